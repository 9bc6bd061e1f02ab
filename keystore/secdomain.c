/*
 * A Managed HSM's security domain, as Managed HSM's download gives it (and as the Azure
 * CLI's `az keyvault security-domain restore-blob` / `upload` read it):
 *
 *   {"EncData": {"data": [{"compact_jwe": JWE, "tag": TAG}], "kdf": "sp108_kdf"},
 *    "SharedKeys": {"enc_shares": [{"enc_key": JWE, "x5t_256": S256}, ...],
 *                   "key_algorithm": "shamir_share", "required": M}}
 *
 * A fresh 32-byte master key is split into N Shamir shares over GF(257), one for each of
 * the customer's certificates, any M of which rebuild it. Each share is a list of 16-bit
 * words (x << 9 | y, little-endian), one per byte of the master key, encrypted to its
 * certificate as a compact JWE (RSA-OAEP-256, A256CBC-HS512). The domain itself is one
 * datum: a compact JWE ("dir", A256CBC-HS512) of the HSM's domain secret under the key
 * SP 800-108 (HMAC-SHA512, counter mode) derives from the master key and the datum's tag.
 * The domain secret is derived from the data folder's root key and the HSM's name, so
 * every download of an HSM carries the same one; it is no key's material.
 *
 * The upload goes the other way. The HSM gives a transfer key (an RSA key and its
 * self-signed certificate, kept sealed in table `secdomain`); the customer opens a downloaded
 * domain with a quorum of private keys and makes a restore blob of it:
 *
 *   {"EncData": {"data": [{"compact_jwe": JWE, "tag": TAG}], "kdf": "sp108_kdf"},
 *    "WrappedKey": {"enc_key": JWE, "x5t_256": S256 of the transfer key's certificate}}
 *
 * where enc_key is a fresh master key encrypted to the transfer key (RSA-OAEP-256,
 * A256CBC-HS512) and the datum is the domain secret under the key SP 800-108 derives from
 * it. The blob opened, the HSM keeps that domain secret (sealed) as its own: its later
 * downloads carry it, as an HSM restored from another's domain shares that domain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "ks.h"
#include "seal.h"
#include "crypto.h"
#include "store.h"
#include "vaults.h"

#define MASTER_LEN 32
#define CEK_LEN    64 /* A256CBC-HS512: the MAC key, then the AES key */
#define DOMAIN_TAG "kvmock-domain"
#define DOMAIN_LEN    32
#define TRANSFER_BITS 2048
#define TRANSFER_DAYS 365
#define REC_KEY_MAX   (KS_VAULT_NAME_MAX + 16)
#define TRANSFER_CN   "kvmock security domain transfer key of "

/* ---- Shamir's secret sharing over GF(257) ----------------------------------------------- */

static unsigned gf_random(void)
{
    return randombytes_uniform(257);
}

/* The shares of @p secret (MASTER_LEN bytes) for x = 1..n, any @p m of which rebuild it:
 * words[i * MASTER_LEN + j] is share x = i + 1 of byte j. */
static void shamir_split(const unsigned char *secret, int n, int m, uint16_t *words)
{
    unsigned coef[10];
    for (size_t j = 0; j < MASTER_LEN; j++) {
        /* a polynomial of degree m - 1 whose constant term is the byte */
        for (int k = 0; k < m - 1; k++)
            coef[k] = gf_random();
        coef[m - 1] = secret[j];
        for (int x = 1; x <= n; x++) {
            unsigned y = 0;
            for (int k = 0; k < m; k++)
                y = (y * (unsigned)x + coef[k]) % 257;
            words[(size_t)(x - 1) * MASTER_LEN + j] = (uint16_t)(((unsigned)x << 9) | y);
        }
    }
    sodium_memzero(coef, sizeof(coef));
}

/* ---- JWE compact, A256CBC-HS512 --------------------------------------------------------- */

/* SP 800-108 in counter mode with HMAC-SHA512, one block: the 64-byte key of @p label. */
static void kdf_sp800_108(const unsigned char *key, size_t key_len, const char *label,
                          unsigned char out[64])
{
    static const unsigned char one[4] = {0, 0, 0, 1}, bits[4] = {0, 0, 2, 0}; /* L = 512 */
    static const unsigned char zero = 0;
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, key, key_len);
    crypto_auth_hmacsha512_update(&st, one, sizeof(one));
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)label, strlen(label));
    crypto_auth_hmacsha512_update(&st, &zero, 1); /* then an empty context */
    crypto_auth_hmacsha512_update(&st, bits, sizeof(bits));
    crypto_auth_hmacsha512_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

static char *b64url(const void *data, size_t len)
{
    char *s = NULL;
    return kv_b64url_encode(data, len, &s) == KV_OK ? s : NULL;
}

/* A256CBC-HS512's tag: HMAC-SHA512 under the content key's first half of the header's
 * text (@p aad, @p aad_len bytes), the IV, the ciphertext and the header's length in bits,
 * cut to 32 bytes (into @p tag). */
static void cbc_hs512_tag(const unsigned char cek[CEK_LEN], const char *aad, size_t aad_len,
                          const unsigned char *iv, const unsigned char *ct, size_t ct_len,
                          unsigned char tag[32])
{
    unsigned char al[8], mac[crypto_auth_hmacsha512_BYTES];
    for (int i = 0; i < 8; i++)
        al[i] = (unsigned char)(((uint64_t)aad_len * 8) >> (56 - 8 * i));
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, cek, 32);
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)aad, aad_len);
    crypto_auth_hmacsha512_update(&st, iv, 16);
    crypto_auth_hmacsha512_update(&st, ct, ct_len);
    crypto_auth_hmacsha512_update(&st, al, sizeof(al));
    crypto_auth_hmacsha512_final(&st, mac);
    memcpy(tag, mac, 32);
    sodium_memzero(&st, sizeof(st));
}

/* A compact JWE of @p plain under content key @p cek, with protected header @p header and
 * (NULL for "dir") the encrypted key @p ekey. NULL when out of memory or OpenSSL fails. */
static char *jwe_compact(const char *header, const unsigned char *ekey, size_t ekey_len,
                         const unsigned char cek[CEK_LEN], const unsigned char *plain,
                         size_t plain_len)
{
    unsigned char iv[16], mac[32];
    randombytes_buf(iv, sizeof(iv));
    char *h = b64url(header, strlen(header)), *out = NULL;
    unsigned char *ct = malloc(plain_len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    int ok = h != NULL && ct != NULL && ctx != NULL &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek + 32, iv) == 1 &&
             EVP_EncryptUpdate(ctx, ct, &len, plain, (int)plain_len) == 1 &&
             EVP_EncryptFinal_ex(ctx, ct + len, &fin) == 1;
    if (ok) {
        size_t ct_len = (size_t)(len + fin);
        cbc_hs512_tag(cek, h, strlen(h), iv, ct, ct_len, mac);
        char *k = ekey != NULL ? b64url(ekey, ekey_len) : NULL, *i = b64url(iv, sizeof(iv)),
             *c = b64url(ct, ct_len), *t = b64url(mac, 32);
        size_t total = strlen(h) + (k ? strlen(k) : 0) + (i ? strlen(i) : 0) + (c ? strlen(c) : 0) +
                       (t ? strlen(t) : 0) + 5;
        if ((ekey == NULL || k != NULL) && i != NULL && c != NULL && t != NULL &&
            (out = malloc(total)) != NULL)
            snprintf(out, total, "%s.%s.%s.%s.%s", h, k ? k : "", i, c, t);
        free(k);
        free(i);
        free(c);
        free(t);
    }
    EVP_CIPHER_CTX_free(ctx);
    free(ct);
    free(h);
    return out;
}

/* ---- the certificates ------------------------------------------------------------------- */

/* The RSA public key (of at least 2048 bits) of DER certificate @p der, or NULL. */
static EVP_PKEY *cert_key(const struct kv_buf *der)
{
    const unsigned char *p = der->data;
    X509 *x = d2i_X509(NULL, &p, (long)der->len);
    EVP_PKEY *k = x != NULL && p == der->data + der->len ? X509_get_pubkey(x) : NULL;
    X509_free(x);
    if (k != NULL && (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < 2048)) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* The compact JWE of @p share (words, little-endian) to certificate key @p key. */
static char *share_jwe(EVP_PKEY *key, const uint16_t *words)
{
    unsigned char plain[2 * MASTER_LEN], cek[CEK_LEN], ekey[1024];
    for (size_t j = 0; j < MASTER_LEN; j++) {
        plain[2 * j] = (unsigned char)(words[j] & 0xff);
        plain[2 * j + 1] = (unsigned char)(words[j] >> 8);
    }
    randombytes_buf(cek, sizeof(cek));
    size_t ekey_len = sizeof(ekey);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_encrypt(ctx, ekey, &ekey_len, cek, sizeof(cek)) == 1;
    EVP_PKEY_CTX_free(ctx);
    char *jwe = ok ? jwe_compact("{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256CBC-HS512\"}", ekey,
                                 ekey_len, cek, plain, sizeof(plain))
                   : NULL;
    sodium_memzero(plain, sizeof(plain));
    sodium_memzero(cek, sizeof(cek));
    return jwe;
}

/* ---- what is kept of an HSM: its transfer key, an uploaded domain ------------------------ */

/* Table `secdomain`, keyed "NAME\0transfer" and "NAME\0domain" (NAME lowercase):
 *   transfer: the certificate's length (4 bytes, big-endian), the certificate (DER), then
 *             the RSA private key (DER) sealed under the root key with the record's key as
 *             associated data;
 *   domain:   the uploaded domain secret, sealed the same way.
 * They go with the HSM's record (ks_secdomain_purge()). */
#define REC_TRANSFER "transfer"
#define REC_DOMAIN   "domain"

/* The record key of @p what of HSM @p hsm (any case) into @p out: its length, 0 when the
 * name is no vault name. */
static size_t rec_key(char out[REC_KEY_MAX], const char *hsm, const char *what)
{
    size_t n = ks_vault_lower(hsm, out), w = strlen(what);
    if (n == 0)
        return 0;
    memcpy(out + n + 1, what, w); /* after the name's NUL */
    return n + 1 + w;
}

enum kv_status ks_secdomain_purge(struct ks_txn *tx, const char *lname)
{
    char k[REC_KEY_MAX];
    size_t n = rec_key(k, lname, REC_TRANSFER);
    enum kv_status st = n > 0 ? ks_txn_del(tx, tx->env->db_secdomain, k, n) : KV_OK;
    if (st == KV_OK && (n = rec_key(k, lname, REC_DOMAIN)) > 0)
        st = ks_txn_del(tx, tx->env->db_secdomain, k, n);
    return st;
}

struct domain_arg {
    const char *hsm;
    unsigned char *out; /* DOMAIN_LEN bytes */
    int found;
};

static enum kv_status domain_read_fn(struct ks_txn *tx, void *arg)
{
    struct domain_arg *a = arg;
    char k[REC_KEY_MAX];
    size_t n = rec_key(k, a->hsm, REC_DOMAIN);
    MDB_val v;
    a->found = 0;
    enum kv_status st =
        n > 0 ? ks_txn_get(tx, tx->env->db_secdomain, k, n, &v) : KV_ERR_KEY_NOT_FOUND;
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_OK : st;
    struct kv_buf plain = {0};
    st = ks_unseal(tx->env->root_key, k, n, v.mv_data, v.mv_size, &plain);
    if (st == KV_OK && plain.len != DOMAIN_LEN)
        st = KV_ERR_STORE;
    if (st == KV_OK) {
        memcpy(a->out, plain.data, DOMAIN_LEN);
        a->found = 1;
    }
    kv_buf_wipe(&plain);
    return st == KV_ERR_CRYPTO ? KV_ERR_STORE : st;
}

/* The domain secret of HSM @p hsm: the one uploaded into it, else its own, derived from
 * its name under the root key, one way. */
static enum kv_status domain_secret(struct ks_env *env, const char *hsm,
                                    unsigned char out[DOMAIN_LEN])
{
    struct domain_arg a = {hsm, out, 0};
    enum kv_status st = ks_txn_read(env, domain_read_fn, &a);
    if (st != KV_OK || a.found)
        return st;
    char lname[KS_VAULT_NAME_MAX + 1] = "", label[KS_VAULT_NAME_MAX + 32];
    ks_vault_lower(hsm, lname);
    snprintf(label, sizeof(label), "kvmock security domain\n%s", lname);
    crypto_generichash(out, DOMAIN_LEN, (const unsigned char *)label, strlen(label), env->root_key,
                       KS_ROOT_KEY_LEN);
    return KV_OK;
}

/* ---- the document ----------------------------------------------------------------------- */

/* Add the item {"compact_jwe"|"enc_key": @p jwe, second member} to @p arr; takes @p jwe. */
static int add_item(cJSON *arr, const char *jwe_name, char *jwe, const char *name,
                    const char *value)
{
    cJSON *o = jwe != NULL ? cJSON_CreateObject() : NULL;
    int ok = o != NULL && cJSON_AddStringToObject(o, jwe_name, jwe) &&
             cJSON_AddStringToObject(o, name, value) && cJSON_AddItemToArray(arr, o);
    if (!ok)
        cJSON_Delete(o);
    free(jwe);
    return ok;
}

enum kv_status ks_hsm_security_domain(struct ks_env *env, const char *hsm,
                                      const struct kv_buf *certs, size_t n, int required,
                                      char **out, const char **why)
{
    *out = NULL;
    *why = NULL;
    if (n < 3 || n > 10) {
        *why = "The security domain needs 3 to 10 certificates.";
        return KV_ERR_BAD_PARAM;
    }
    if (required < 2 || (size_t)required > n) {
        *why = "The security domain's quorum (required) must be between 2 and the number of "
               "certificates.";
        return KV_ERR_BAD_PARAM;
    }
    EVP_PKEY *keys[10] = {0};
    enum kv_status st = KV_OK;
    for (size_t i = 0; st == KV_OK && i < n; i++) {
        /* out of memory, or not such a certificate: only a second failure says which */
        if ((keys[i] = cert_key(&certs[i])) == NULL && (keys[i] = cert_key(&certs[i])) == NULL) {
            *why = "Each certificate (x5c) must be an X.509 certificate with an RSA key of at "
                   "least 2048 bits.";
            st = KV_ERR_BAD_PARAM;
        }
        for (size_t j = 0; st == KV_OK && j < i; j++) {
            if (EVP_PKEY_eq(keys[j], keys[i]) == 1) { /* two certificates of one key too */
                *why = "The certificates' keys must differ: each holds one share of the security "
                       "domain.";
                st = KV_ERR_BAD_PARAM;
            }
        }
    }
    unsigned char master[MASTER_LEN], domain[DOMAIN_LEN], key[64];
    uint16_t words[10 * MASTER_LEN];
    randombytes_buf(master, sizeof(master));
    if (st == KV_OK)
        st = domain_secret(env, hsm, domain);
    cJSON *doc = st == KV_OK ? cJSON_CreateObject() : NULL;
    cJSON *enc = doc ? cJSON_AddObjectToObject(doc, "EncData") : NULL;
    cJSON *data = enc ? cJSON_AddArrayToObject(enc, "data") : NULL;
    int ok = data != NULL;
    if (ok) {
        kdf_sp800_108(master, sizeof(master), DOMAIN_TAG, key);
        char header[96];
        snprintf(header, sizeof(header),
                 "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\",\"kid\":\"%s\"}", DOMAIN_TAG);
        char *jwe = jwe_compact(header, NULL, 0, key, domain, sizeof(domain));
        ok = add_item(data, "compact_jwe", jwe, "tag", DOMAIN_TAG) &&
             cJSON_AddStringToObject(enc, "kdf", "sp108_kdf");
    }
    cJSON *shared = ok ? cJSON_AddObjectToObject(doc, "SharedKeys") : NULL;
    cJSON *shares = shared ? cJSON_AddArrayToObject(shared, "enc_shares") : NULL;
    ok = shares != NULL;
    if (ok)
        shamir_split(master, (int)n, required, words);
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char thumb[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(thumb, certs[i].data, certs[i].len);
        char *s256 = b64url(thumb, sizeof(thumb));
        ok = s256 != NULL && add_item(shares, "enc_key", share_jwe(keys[i], words + i * MASTER_LEN),
                                      "x5t_256", s256);
        free(s256);
    }
    ok = ok && cJSON_AddStringToObject(shared, "key_algorithm", "shamir_share") &&
         cJSON_AddNumberToObject(shared, "required", required);
    if (ok && (*out = cJSON_PrintUnformatted(doc)) == NULL)
        ok = 0;
    if (st == KV_OK && !ok)
        st = KV_ERR_NOMEM;
    sodium_memzero(master, sizeof(master));
    sodium_memzero(domain, sizeof(domain));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(words, sizeof(words));
    cJSON_Delete(doc);
    for (size_t i = 0; i < n && i < 10; i++)
        EVP_PKEY_free(keys[i]);
    return st;
}

/* ---- the upload: the transfer key, and a restore blob opened with it ------------------ */

/* A transfer key: an RSA key and its self-signed certificate, DER, into @p cert, and its
 * private key (ks_material_serialize()) into @p priv (kv_buf_wipe()). */
static enum kv_status transfer_make(const char *hsm, struct kv_buf *cert, struct kv_buf *priv)
{
    char lname[KS_VAULT_NAME_MAX + 1] = "", cn[KS_VAULT_NAME_MAX + 64];
    ks_vault_lower(hsm, lname);
    snprintf(cn, sizeof(cn), TRANSFER_CN "%s", lname);
    struct ks_material *m = NULL;
    enum kv_status st = ks_material_generate(KS_KTY_RSA, TRANSFER_BITS, 65537, KS_CRV_NONE, &m);
    if (st == KV_OK)
        st = ks_material_certificate(m, cn, TRANSFER_DAYS, cert);
    if (st == KV_OK && (st = ks_material_serialize(m, priv)) != KV_OK)
        kv_buf_free(cert);
    ks_material_free(m);
    return st;
}

struct transfer_arg {
    const char *hsm;
    int want_priv;
    struct kv_buf cert, priv; /* out: what the record holds (priv only when asked) */
    const struct kv_buf *add_cert; /* transfer_keep_fn: the one to keep; domain_keep_fn: the
                                      one the domain was opened with */
    const struct kv_buf *add_priv; /* transfer_keep_fn: its private key */
    const unsigned char *domain;   /* domain_keep_fn: the uploaded domain secret */
};

/* The HSM must be a live Managed HSM. */
static enum kv_status live_hsm(struct ks_txn *tx, const char *hsm)
{
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, hsm, &v);
    return st == KV_OK && !v.hsm ? KV_ERR_VAULT_NOT_FOUND : st;
}

/* Read the transfer key's record into @p a (KV_ERR_KEY_NOT_FOUND when there is none). */
static enum kv_status transfer_get(struct ks_txn *tx, struct transfer_arg *a)
{
    char k[REC_KEY_MAX];
    size_t n = rec_key(k, a->hsm, REC_TRANSFER);
    MDB_val v;
    enum kv_status st =
        n > 0 ? ks_txn_get(tx, tx->env->db_secdomain, k, n, &v) : KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK)
        return st;
    const unsigned char *p = v.mv_data;
    size_t clen = v.mv_size >= 4
                      ? (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3]
                      : 0;
    if (clen == 0 || clen > v.mv_size - 4)
        return KV_ERR_STORE;
    st = kv_buf_alloc(clen, &a->cert);
    if (st == KV_OK)
        memcpy(a->cert.data, p + 4, clen);
    if (st == KV_OK && a->want_priv) {
        st = ks_unseal(tx->env->root_key, k, n, p + 4 + clen, v.mv_size - 4 - clen, &a->priv);
        if (st == KV_ERR_CRYPTO)
            st = KV_ERR_STORE;
    }
    if (st != KV_OK)
        kv_buf_free(&a->cert);
    return st;
}

static enum kv_status transfer_read_fn(struct ks_txn *tx, void *arg)
{
    struct transfer_arg *a = arg;
    enum kv_status st = live_hsm(tx, a->hsm);
    return st == KV_OK ? transfer_get(tx, a) : st;
}

/* The start of both writes: the HSM is live, and its transfer key's record as it is now
 * (a write's body runs again when its batch met a full map: what a run read goes first). */
static enum kv_status write_start(struct ks_txn *tx, struct transfer_arg *a)
{
    kv_buf_free(&a->cert);
    kv_buf_wipe(&a->priv);
    enum kv_status st = live_hsm(tx, a->hsm);
    return st == KV_OK ? transfer_get(tx, a) : st;
}

/* Keep a->add_cert and a->add_priv as the HSM's transfer key, unless it has one: then that
 * one is read back into a->cert. */
static enum kv_status transfer_keep_fn(struct ks_txn *tx, void *arg)
{
    struct transfer_arg *a = arg;
    enum kv_status st = write_start(tx, a);
    if (st != KV_ERR_KEY_NOT_FOUND)
        return st; /* KV_OK: it has one, read back */
    char k[REC_KEY_MAX];
    struct kv_buf sealed = {0}, rec = {0};
    size_t n = rec_key(k, a->hsm, REC_TRANSFER), clen = a->add_cert->len;
    st = ks_seal(tx->env->root_key, k, n, a->add_priv->data, a->add_priv->len, &sealed);
    if (st == KV_OK)
        st = kv_buf_alloc(4 + clen + sealed.len, &rec);
    if (st == KV_OK) {
        rec.data[0] = (unsigned char)(clen >> 24);
        rec.data[1] = (unsigned char)(clen >> 16);
        rec.data[2] = (unsigned char)(clen >> 8);
        rec.data[3] = (unsigned char)clen;
        memcpy(rec.data + 4, a->add_cert->data, clen);
        memcpy(rec.data + 4 + clen, sealed.data, sealed.len);
        st = ks_txn_put(tx, tx->env->db_secdomain, k, n, rec.data, rec.len);
    }
    if (st == KV_OK)
        st = kv_buf_alloc(clen, &a->cert);
    if (st == KV_OK)
        memcpy(a->cert.data, a->add_cert->data, clen);
    kv_buf_free(&rec);
    kv_buf_free(&sealed);
    return st;
}

/* Keep a->domain as the HSM's domain, while its transfer key is still a->add_cert, the one
 * that opened it (KV_ERR_BAD_PARAM otherwise). */
static enum kv_status domain_keep_fn(struct ks_txn *tx, void *arg)
{
    struct transfer_arg *a = arg;
    enum kv_status st = write_start(tx, a);
    if (st == KV_ERR_KEY_NOT_FOUND ||
        (st == KV_OK && (a->cert.len != a->add_cert->len ||
                         memcmp(a->cert.data, a->add_cert->data, a->cert.len) != 0)))
        st = KV_ERR_BAD_PARAM;
    char k[REC_KEY_MAX];
    struct kv_buf sealed = {0};
    size_t n = rec_key(k, a->hsm, REC_DOMAIN);
    if (st == KV_OK)
        st = ks_seal(tx->env->root_key, k, n, a->domain, DOMAIN_LEN, &sealed);
    if (st == KV_OK)
        st = ks_txn_put(tx, tx->env->db_secdomain, k, n, sealed.data, sealed.len);
    kv_buf_free(&sealed);
    return st;
}

/* RSA parameter @p name of @p key, base64url, or NULL. */
static char *rsa_param_b64url(const EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    char *s = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) == 1) {
        int n = BN_num_bytes(bn);
        unsigned char *b = n > 0 ? malloc((size_t)n) : NULL;
        if (b != NULL && BN_bn2bin(bn, b) == n)
            s = b64url(b, (size_t)n);
        free(b);
    }
    BN_free(bn);
    return s;
}

/* The JSON web key's text of transfer key certificate @p cert (DER) of HSM @p hsm. */
static enum kv_status transfer_jwk(const char *hsm, const struct kv_buf *cert, char **jwk)
{
    *jwk = NULL;
    const unsigned char *p = cert->data;
    X509 *x = d2i_X509(NULL, &p, (long)cert->len);
    const EVP_PKEY *key = x != NULL ? X509_get0_pubkey(x) : NULL;
    char kid[KS_VAULT_NAME_MAX + 64], *n = NULL, *e = NULL, *s256 = NULL, *x5c = NULL;
    unsigned char thumb[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(thumb, cert->data, cert->len);
    size_t x5c_len = sodium_base64_ENCODED_LEN(cert->len, sodium_base64_VARIANT_ORIGINAL);
    if (key != NULL && (x5c = malloc(x5c_len)) != NULL)
        sodium_bin2base64(x5c, x5c_len, cert->data, cert->len, sodium_base64_VARIANT_ORIGINAL);
    if (key != NULL) {
        n = rsa_param_b64url(key, OSSL_PKEY_PARAM_RSA_N);
        e = rsa_param_b64url(key, OSSL_PKEY_PARAM_RSA_E);
        s256 = b64url(thumb, sizeof(thumb));
    }
    char lname[KS_VAULT_NAME_MAX + 1] = "";
    ks_vault_lower(hsm, lname);
    snprintf(kid, sizeof(kid), "CN=" TRANSFER_CN "%s", lname);
    cJSON *o = cJSON_CreateObject(), *ops = NULL, *chain = NULL;
    int ok =
        o != NULL && n != NULL && e != NULL && s256 != NULL && x5c != NULL &&
        cJSON_AddStringToObject(o, "kid", kid) && cJSON_AddStringToObject(o, "kty", "RSA") &&
        (ops = cJSON_AddArrayToObject(o, "key_ops")) != NULL &&
        cJSON_AddItemToArray(ops, cJSON_CreateString("wrapKey")) &&
        cJSON_AddItemToArray(ops, cJSON_CreateString("encrypt")) &&
        cJSON_AddStringToObject(o, "use", "enc") &&
        cJSON_AddStringToObject(o, "alg", "RSA-OAEP-256") && cJSON_AddStringToObject(o, "n", n) &&
        cJSON_AddStringToObject(o, "e", e) && (chain = cJSON_AddArrayToObject(o, "x5c")) != NULL &&
        cJSON_AddItemToArray(chain, cJSON_CreateString(x5c)) &&
        cJSON_AddStringToObject(o, "x5t#S256", s256) && (*jwk = cJSON_PrintUnformatted(o)) != NULL;
    cJSON_Delete(o);
    X509_free(x);
    free(n);
    free(e);
    free(s256);
    free(x5c);
    return ok ? KV_OK : KV_ERR_NOMEM;
}

enum kv_status ks_hsm_transfer_key(struct ks_env *env, const char *hsm, char **jwk)
{
    *jwk = NULL;
    struct transfer_arg a = {.hsm = hsm};
    enum kv_status st = ks_txn_read(env, transfer_read_fn, &a);
    if (st == KV_OK) {
        st = transfer_jwk(hsm, &a.cert, jwk);
    } else if (st == KV_ERR_KEY_NOT_FOUND) {
        /* the first ask: the key and its answer made outside the transaction, so that a
         * failure keeps nothing; kept unless another ask kept one meanwhile */
        struct kv_buf c = {0}, p = {0};
        st = transfer_make(hsm, &c, &p);
        if (st == KV_OK)
            st = transfer_jwk(hsm, &c, jwk);
        a.add_cert = &c;
        a.add_priv = &p;
        if (st == KV_OK)
            st = ks_txn_write(env, transfer_keep_fn, &a);
        if (st == KV_OK && (a.cert.len != c.len || memcmp(a.cert.data, c.data, c.len) != 0)) {
            cJSON_free(*jwk); /* the other ask's */
            st = transfer_jwk(hsm, &a.cert, jwk);
        }
        kv_buf_free(&c);
        kv_buf_wipe(&p);
    }
    if (st != KV_OK) {
        cJSON_free(*jwk);
        *jwk = NULL;
    }
    kv_buf_free(&a.cert);
    return st;
}

/* Compact JWE @p jwe (enc A256CBC-HS512) opened: its content key is @p dir_key (64 bytes;
 * alg "dir") or its encrypted key opened with RSA key @p rsa (alg RSA-OAEP-256). The
 * plaintext into @p out (kv_buf_wipe()). KV_ERR_CRYPTO_FAILED when it is no such JWE or does
 * not open; KV_ERR_NOMEM, KV_ERR_CRYPTO (OpenSSL failed) are no judgement of it. */
static enum kv_status jwe_open(const char *jwe, const struct ks_material *rsa,
                               const unsigned char *dir_key, struct kv_buf *out)
{
    const char *dot[4], *p = jwe;
    for (int i = 0; i < 4; i++) {
        if ((dot[i] = strchr(p, '.')) == NULL)
            return KV_ERR_CRYPTO_FAILED;
        p = dot[i] + 1;
    }
    if (strchr(p, '.') != NULL)
        return KV_ERR_CRYPTO_FAILED;
    const char *start[5] = {jwe, dot[0] + 1, dot[1] + 1, dot[2] + 1, dot[3] + 1};
    size_t len[5] = {(size_t)(dot[0] - jwe), (size_t)(dot[1] - start[1]),
                     (size_t)(dot[2] - start[2]), (size_t)(dot[3] - start[3]), strlen(start[4])};
    struct kv_buf part[5] = {{0}};
    enum kv_status st = KV_OK;
    for (int i = 0; st == KV_OK && i < 5; i++) {
        char *text = len[i] > 0 ? strndup(start[i], len[i]) : NULL;
        if (len[i] > 0)
            st = text == NULL ? KV_ERR_NOMEM : kv_b64url_decode(text, &part[i]);
        free(text);
    }
    if (st == KV_ERR_BAD_BASE64)
        st = KV_ERR_CRYPTO_FAILED;
    /* the header names what opens it; a header that does not parse twice is no JSON (once:
     * out of memory) */
    cJSON *hdr = NULL;
    if (st == KV_OK && part[0].len > 0 &&
        (hdr = cJSON_ParseWithLength((const char *)part[0].data, part[0].len)) == NULL) {
        hdr = cJSON_ParseWithLength((const char *)part[0].data, part[0].len);
        st = hdr != NULL ? KV_ERR_NOMEM : KV_ERR_CRYPTO_FAILED;
    }
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hdr, "alg"));
    const char *enc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hdr, "enc"));
    if (st == KV_OK && (alg == NULL || enc == NULL || strcmp(enc, "A256CBC-HS512") != 0 ||
                        strcmp(alg, rsa != NULL ? "RSA-OAEP-256" : "dir") != 0 ||
                        (rsa != NULL) != (part[1].len > 0) || part[2].len != 16 ||
                        part[3].len == 0 || part[3].len % 16 != 0 || part[4].len != 32))
        st = KV_ERR_CRYPTO_FAILED;
    cJSON_Delete(hdr);
    unsigned char cek[CEK_LEN], mac[32];
    if (st == KV_OK && rsa != NULL) {
        struct ks_op_params op = {.alg = KS_ALG_RSA_OAEP_256, .value = part[1]};
        struct ks_op_result res = {0};
        st = ks_material_op(rsa, KS_OP_DECRYPT, &op, &res);
        if (st == KV_ERR_BAD_INPUT_LENGTH || (st == KV_OK && res.value.len != CEK_LEN))
            st = KV_ERR_CRYPTO_FAILED;
        if (st == KV_OK)
            memcpy(cek, res.value.data, CEK_LEN);
        ks_op_result_clear(&res);
    } else if (st == KV_OK) {
        memcpy(cek, dir_key, CEK_LEN);
    }
    if (st == KV_OK) {
        cbc_hs512_tag(cek, jwe, len[0], part[2].data, part[3].data, part[3].len, mac);
        if (sodium_memcmp(mac, part[4].data, 32) != 0)
            st = KV_ERR_CRYPTO_FAILED;
    }
    if (st == KV_OK)
        st = kv_buf_alloc(part[3].len, out);
    if (st == KV_OK) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        int n = 0, fin = 0;
        if (ctx == NULL)
            st = KV_ERR_NOMEM;
        else if (EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek + 32, part[2].data) != 1 ||
                 EVP_DecryptUpdate(ctx, out->data, &n, part[3].data, (int)part[3].len) != 1)
            st = KV_ERR_CRYPTO;
        else if (EVP_DecryptFinal_ex(ctx, out->data + n, &fin) != 1)
            st = KV_ERR_CRYPTO_FAILED; /* its padding */
        EVP_CIPHER_CTX_free(ctx);
        out->len = (size_t)(n + fin);
        if (st != KV_OK)
            kv_buf_wipe(out);
    }
    sodium_memzero(cek, sizeof(cek));
    for (int i = 0; i < 5; i++)
        kv_buf_free(&part[i]);
    return st;
}

#define WHY_FORMAT                                                                                 \
    "The security domain upload needs its restore blob in 'value': the JSON text `az keyvault "    \
    "security-domain restore-blob` makes, with EncData and WrappedKey."
#define WHY_TRANSFER                                                                               \
    "The restore blob is wrapped for another transfer key: get this managed HSM's transfer key "   \
    "(GET /securitydomain/upload) and make the blob for it."
#define WHY_OPEN                                                                                   \
    "The restore blob does not open: its wrapped key does not open with the transfer key, or "     \
    "its security domain with the key it wraps."
#define WHY_NOT_OURS "The restore blob holds no kvmock managed HSM's security domain."

/* Open restore blob @p doc with transfer key @p priv (DER): its domain secret into @p domain. */
static enum kv_status blob_open(const cJSON *doc, const struct kv_buf *priv,
                                unsigned char domain[DOMAIN_LEN], const char **why)
{
    const cJSON *data =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "EncData"), "data");
    const char *ekey = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "WrappedKey"), "enc_key"));
    struct ks_material *rsa = NULL;
    struct kv_buf master = {0}, plain = {0};
    enum kv_status st = ks_material_deserialize(KS_KTY_RSA, priv->data, priv->len, &rsa);
    if (st == KV_OK)
        st = jwe_open(ekey, rsa, NULL, &master);
    else if (st == KV_ERR_CRYPTO)
        st = KV_ERR_STORE; /* what the store holds does not parse */
    ks_material_free(rsa);
    if (st == KV_OK && (master.len == 0 || master.len > 64))
        st = KV_ERR_CRYPTO_FAILED;
    const cJSON *d;
    int n = 0, ours = 0;
    cJSON_ArrayForEach(d, data)
    {
        if (st != KV_OK)
            break;
        const char *tag = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "tag"));
        unsigned char key[64];
        kdf_sp800_108(master.data, master.len, tag, key);
        st = jwe_open(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "compact_jwe")),
                      NULL, key, &plain);
        sodium_memzero(key, sizeof(key));
        n++;
        if (st == KV_OK && strcmp(tag, DOMAIN_TAG) == 0 && plain.len == DOMAIN_LEN) {
            memcpy(domain, plain.data, DOMAIN_LEN);
            ours = 1;
        }
        kv_buf_wipe(&plain);
    }
    kv_buf_wipe(&master);
    if (st == KV_ERR_CRYPTO_FAILED) {
        *why = WHY_OPEN;
        st = KV_ERR_BAD_PARAM;
    } else if (st == KV_OK && (n != 1 || !ours)) {
        *why = WHY_NOT_OURS;
        st = KV_ERR_BAD_PARAM;
    }
    return st;
}

/* Whether restore blob @p doc has the members an upload reads, each of its type. */
static int blob_shaped(const cJSON *doc)
{
    const cJSON *data =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "EncData"), "data");
    const cJSON *wk = cJSON_GetObjectItemCaseSensitive(doc, "WrappedKey"), *d;
    if (!cJSON_IsArray(data) || cJSON_GetArraySize(data) == 0 ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(wk, "enc_key")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(wk, "x5t_256")))
        return 0;
    cJSON_ArrayForEach(d, data)
    {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "compact_jwe")) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "tag")))
            return 0;
    }
    return 1;
}

enum kv_status ks_hsm_security_domain_upload(struct ks_env *env, const char *hsm, const char *blob,
                                             size_t len, const char **why)
{
    *why = NULL;
    /* a blob that does not parse twice is no JSON (once: out of memory) */
    cJSON *doc = blob != NULL ? cJSON_ParseWithLength(blob, len) : NULL;
    if (doc == NULL && blob != NULL && (doc = cJSON_ParseWithLength(blob, len)) != NULL) {
        cJSON_Delete(doc);
        return KV_ERR_NOMEM;
    }
    if (!blob_shaped(doc)) {
        cJSON_Delete(doc);
        *why = WHY_FORMAT;
        return KV_ERR_BAD_PARAM;
    }
    struct transfer_arg a = {.hsm = hsm, .want_priv = 1};
    enum kv_status st = ks_txn_read(env, transfer_read_fn, &a);
    if (st == KV_OK) {
        /* the blob must be wrapped for this HSM's transfer key (its certificate's SHA-256) */
        unsigned char thumb[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(thumb, a.cert.data, a.cert.len);
        char *s256 = b64url(thumb, sizeof(thumb));
        const char *given = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(doc, "WrappedKey"), "x5t_256"));
        if (s256 == NULL)
            st = KV_ERR_NOMEM;
        else if (strcmp(s256, given) != 0)
            st = KV_ERR_KEY_NOT_FOUND;
        free(s256);
    }
    unsigned char domain[DOMAIN_LEN];
    if (st == KV_ERR_KEY_NOT_FOUND) { /* no transfer key, or another one */
        *why = WHY_TRANSFER;
        st = KV_ERR_BAD_PARAM;
    } else if (st == KV_OK) {
        st = blob_open(doc, &a.priv, domain, why);
    }
    cJSON_Delete(doc);
    kv_buf_wipe(&a.priv);
    if (st == KV_OK) {
        struct kv_buf cert = a.cert;
        a = (struct transfer_arg){.hsm = hsm, .add_cert = &cert, .domain = domain};
        st = ks_txn_write(env, domain_keep_fn, &a);
        if (st == KV_ERR_BAD_PARAM) /* the HSM was purged and made again meanwhile */
            *why = WHY_TRANSFER;
        kv_buf_free(&cert);
    }
    sodium_memzero(domain, sizeof(domain));
    kv_buf_free(&a.cert);
    kv_buf_wipe(&a.priv);
    return st;
}

enum kv_status ks_hsm_security_domain_uploaded(struct ks_env *env, const char *hsm, int *yes)
{
    unsigned char domain[DOMAIN_LEN];
    struct domain_arg a = {hsm, domain, 0};
    enum kv_status st = ks_txn_read(env, domain_read_fn, &a);
    sodium_memzero(domain, sizeof(domain));
    *yes = st == KV_OK && a.found;
    return st;
}
