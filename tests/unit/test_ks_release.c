/*
 * Secure key release in the keystore: the rules for exportable keys and their release
 * policies (create, import, update, rotate, backup/restore), and for hardware keys, which
 * only premium vaults make; and ks_key_release(), whose
 * output is opened here with OpenSSL as a release's recipient opens it.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ks.h"
#include "kv_buf.h"
#include "testkeys.h"

static char dir[] = "/tmp/kvmock-release-XXXXXX";
static struct ks_env *env;
static EVP_PKEY *target; /* the recipient's RSA key */
static struct kv_buf target_n, target_e;

static const char policy_a[] = "{\"version\":\"1.0.0\",\"anyOf\":[]}";
static const char policy_b[] = "{\"version\":\"1.0.0\",\"anyOf\":[{}]}";

static void put_vault(const char *name, int premium)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7, .premium = premium};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
}

static struct ks_release_policy policy(const char *data, int immutable)
{
    struct ks_release_policy rp = {.set = 1, .immutable = immutable, .data = (char *)data};
    return rp;
}

static enum kv_status create(const char *vault, const char *name, enum ks_kty kty, int hsm,
                             int exportable, const struct ks_release_policy *rp,
                             struct ks_key **out)
{
    struct ks_create p = {.kty = kty,
                          .hsm = hsm,
                          .attrs = {.enabled = 1, .exportable = exportable},
                          .release_policy = rp};
    *out = NULL;
    return ks_key_create(env, vault, name, &p, out);
}

static void rules(void)
{
    struct ks_release_policy rp = policy(policy_a, 0);
    struct ks_key *k = NULL;
    CHECK_ST(create("std", "k", KS_KTY_RSA, 1, 1, &rp, &k), KV_ERR_SKR_PREMIUM);
    CHECK_ST(create("prem", "k", KS_KTY_RSA, 0, 1, &rp, &k), KV_ERR_SKR_NOT_HSM);
    CHECK_ST(create("prem", "k", KS_KTY_RSA, 1, 1, NULL, &k), KV_ERR_SKR_NO_POLICY);
    CHECK_ST(create("prem", "k", KS_KTY_RSA, 1, 0, &rp, &k), KV_ERR_SKR_POLICY_NOT_EXPORTABLE);
    /* a refused create leaves no key behind */
    CHECK_ST(ks_key_get(env, "prem", "k", NULL, &k), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "std", "k", NULL, &k), KV_ERR_KEY_NOT_FOUND);

    CHECK_ST(create("prem", "k", KS_KTY_OCT, 1, 1, &rp, &k), KV_OK);
    if (k != NULL) {
        CHECK(k->attrs.exportable && k->release_policy.set && !k->release_policy.immutable);
        CHECK_STR(k->release_policy.data, policy_a);
        CHECK_STR(k->release_policy.content_type, KS_RELEASE_POLICY_CONTENT_TYPE);
    }
    ks_key_free(k);
    /* read back from the record, and through the memo a second time */
    for (int i = 0; i < 2; i++) {
        CHECK_ST(ks_key_get(env, "prem", "k", NULL, &k), KV_OK);
        if (k != NULL)
            CHECK_STR(k->release_policy.data, policy_a);
        ks_key_free(k);
    }

    /* a new version of an exportable key takes the current version's policy when given
     * none; one of a key that is not exportable does not */
    CHECK_ST(create("prem", "k", KS_KTY_OCT, 1, 1, NULL, &k), KV_OK);
    if (k != NULL)
        CHECK(k->release_policy.set && strcmp(k->release_policy.data, policy_a) == 0);
    ks_key_free(k);
    CHECK_ST(create("prem", "k0", KS_KTY_OCT, 1, 0, NULL, &k), KV_OK);
    ks_key_free(k);
    CHECK_ST(create("prem", "k0", KS_KTY_OCT, 1, 1, NULL, &k), KV_ERR_SKR_NO_POLICY);

    /* import follows the same rules */
    unsigned char bytes[32] = {1};
    struct ks_import im = {.jwk = {.kty = KS_KTY_OCT, .k = {bytes, sizeof(bytes)}},
                           .hsm = 0,
                           .attrs = {.enabled = 1, .exportable = 1},
                           .release_policy = &rp};
    CHECK_ST(ks_key_import(env, "prem", "imp", &im, &k), KV_ERR_SKR_NOT_HSM);
    im.hsm = 1;
    im.release_policy = NULL;
    CHECK_ST(ks_key_import(env, "prem", "imp", &im, &k), KV_ERR_SKR_NO_POLICY);
    im.release_policy = &rp;
    CHECK_ST(ks_key_import(env, "prem", "imp", &im, &k), KV_OK);
    ks_key_free(k);
}

/* Hardware keys (kty RSA-HSM, EC-HSM, oct-HSM) are made only in a premium vault. */
static void hardware_keys(void)
{
    struct ks_key *k = NULL;
    const enum ks_kty kinds[] = {KS_KTY_RSA, KS_KTY_EC, KS_KTY_OCT};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        CHECK_ST(create("std", "hw", kinds[i], 1, 0, NULL, &k), KV_ERR_HSM_STANDARD);
        CHECK_ST(create("std", "sw", kinds[i], 0, 0, NULL, &k), KV_OK);
        ks_key_free(k);
    }
    CHECK_ST(ks_key_get(env, "std", "hw", NULL, &k), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(create("std", "sw", KS_KTY_EC, 1, 0, NULL, &k), KV_ERR_HSM_STANDARD); /* a version */

    /* an import is decided in the transaction that writes */
    unsigned char bytes[32] = {2};
    struct ks_import im = {
        .jwk = {.kty = KS_KTY_OCT, .k = {bytes, sizeof(bytes)}}, .hsm = 1, .attrs = {.enabled = 1}};
    CHECK_ST(ks_key_import(env, "std", "hw", &im, &k), KV_ERR_HSM_STANDARD);
    CHECK_ST(ks_key_get(env, "std", "hw", NULL, &k), KV_ERR_KEY_NOT_FOUND);

    /* a premium vault's hardware key restores into premium vaults only */
    CHECK_ST(create("prem", "hw", KS_KTY_EC, 1, 0, NULL, &k), KV_OK);
    ks_key_free(k);
    struct kv_buf blob = {0};
    CHECK_ST(ks_key_backup(env, "prem", "hw", &blob), KV_OK);
    CHECK_ST(ks_key_restore(env, "std", blob.data, blob.len, NULL, &k), KV_ERR_HSM_STANDARD);
    CHECK_ST(ks_key_get(env, "std", "hw", NULL, &k), KV_ERR_KEY_NOT_FOUND);
    put_vault("hw-target", 1);
    CHECK_ST(ks_key_restore(env, "hw-target", blob.data, blob.len, NULL, &k), KV_OK);
    ks_key_free(k);
    kv_buf_free(&blob);
    /* an exportable key there, which kvmock's clock rotates after 30 days */
    struct ks_release_policy rp = policy(policy_a, 0);
    CHECK_ST(create("hw-target", "exp", KS_KTY_OCT, 1, 1, &rp, &k), KV_OK);
    ks_key_free(k);
    struct ks_rotation_policy rot = {
        .n_actions = 1,
        .actions = {{.rotate = 1, .after_create = "P30D", .after_create_s = 30 * 86400}}};
    struct ks_rotation_policy rot_out;
    CHECK_ST(ks_rotation_policy_set(env, "hw-target", "exp", &rot, &rot_out), KV_OK);

    /* a vault made standard again: its keys rotate, by hand and by the clock (else the
     * sweep stops at them), and no new hardware or exportable key is made */
    put_vault("hw-target", 0);
    CHECK_ST(ks_key_rotate(env, "hw-target", "hw", &k), KV_OK);
    if (k != NULL)
        CHECK(k->hsm && k->kty == KS_KTY_EC);
    ks_key_free(k);
    CHECK_ST(create("hw-target", "hw", KS_KTY_EC, 1, 0, NULL, &k), KV_ERR_HSM_STANDARD);
    CHECK_ST(create("hw-target", "exp", KS_KTY_OCT, 1, 1, NULL, &k), KV_ERR_SKR_PREMIUM);
    ks_clock_advance(31 * 86400); /* the last check of this program: the clock stays moved */
    size_t rotated = 0;
    CHECK_ST(ks_sweep(env, NULL, &rotated), KV_OK);
    CHECK(rotated == 1);
    CHECK_ST(ks_key_get(env, "hw-target", "exp", NULL, &k), KV_OK);
    if (k != NULL)
        CHECK(k->hsm && k->attrs.exportable && strcmp(k->release_policy.data, policy_a) == 0 &&
              k->attrs.created > ks_now() - 60);
    ks_key_free(k);
}

static void update(void)
{
    struct ks_release_policy a = policy(policy_a, 0), b = policy(policy_b, 1);
    struct ks_key *k = NULL, *plain = NULL;
    CHECK_ST(create("prem", "u", KS_KTY_EC, 1, 1, &a, &k), KV_OK);
    ks_key_free(k);
    CHECK_ST(create("prem", "plain", KS_KTY_EC, 1, 0, NULL, &plain), KV_OK);
    ks_key_free(plain);

    struct ks_update u = {.exportable_set = 1, .exportable = 0};
    CHECK_ST(ks_key_update(env, "prem", "u", NULL, &u, &k), KV_ERR_SKR_EXPORTABLE_CHANGE);
    u.exportable = 1; /* repeating it is no change */
    CHECK_ST(ks_key_update(env, "prem", "u", NULL, &u, &k), KV_OK);
    ks_key_free(k);
    struct ks_update on = {.exportable_set = 1, .exportable = 1};
    CHECK_ST(ks_key_update(env, "prem", "plain", NULL, &on, &k), KV_ERR_SKR_EXPORTABLE_CHANGE);
    struct ks_update give = {.release_policy = &a};
    CHECK_ST(ks_key_update(env, "prem", "plain", NULL, &give, &k),
             KV_ERR_SKR_POLICY_NOT_EXPORTABLE);

    /* a mutable policy is replaced, here by an immutable one, which then stays */
    struct ks_update to_b = {.release_policy = &b};
    CHECK_ST(ks_key_update(env, "prem", "u", NULL, &to_b, &k), KV_OK);
    if (k != NULL)
        CHECK(strcmp(k->release_policy.data, policy_b) == 0 && k->release_policy.immutable);
    ks_key_free(k);
    struct ks_update back = {.release_policy = &a, .tags_set = 0, .enabled_set = 1, .enabled = 0};
    CHECK_ST(ks_key_update(env, "prem", "u", NULL, &back, &k), KV_ERR_SKR_IMMUTABLE);
    CHECK_ST(ks_key_get(env, "prem", "u", NULL, &k), KV_OK);
    if (k != NULL) /* nothing of the refused update was written */
        CHECK(k->attrs.enabled && strcmp(k->release_policy.data, policy_b) == 0);
    ks_key_free(k);

    /* rotation keeps exportable and the policy; a backup carries them */
    struct ks_key *r = NULL;
    CHECK_ST(ks_key_rotate(env, "prem", "u", &r), KV_OK);
    if (r != NULL)
        CHECK(r->attrs.exportable && r->release_policy.immutable &&
              strcmp(r->release_policy.data, policy_b) == 0);
    ks_key_free(r);
    struct kv_buf blob = {0};
    CHECK_ST(ks_key_backup(env, "prem", "u", &blob), KV_OK);
    put_vault("prem2", 1);
    CHECK_ST(ks_key_restore(env, "prem2", blob.data, blob.len, NULL, &r), KV_OK);
    if (r != NULL)
        CHECK(r->attrs.exportable && strcmp(r->release_policy.data, policy_b) == 0);
    ks_key_free(r);
    kv_buf_free(&blob);
}

/* Open a release as its recipient: RSA-OAEP with @p md, then AES key unwrap with padding. */
static int open_release(const struct kv_buf *w, const EVP_MD *md, struct kv_buf *out)
{
    /* RSA decryption wants room for a whole block, whatever the plaintext's length */
    unsigned char kek[512];
    size_t rsa_len = (size_t)EVP_PKEY_get_size(target), kek_len = sizeof(kek);
    int ok = 0, l1 = 0, l2 = 0;
    if (w->len <= rsa_len + 8)
        return 0;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new(target, NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (p == NULL || c == NULL || EVP_PKEY_decrypt_init(p) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(p, md) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(p, md) <= 0 ||
        EVP_PKEY_decrypt(p, kek, &kek_len, w->data, rsa_len) <= 0 || kek_len != 32)
        goto done;
    if (kv_buf_alloc(w->len - rsa_len, out) != KV_OK)
        goto done;
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_DecryptInit_ex(c, EVP_aes_256_wrap_pad(), NULL, kek, NULL) != 1 ||
        EVP_DecryptUpdate(c, out->data, &l1, w->data + rsa_len, (int)(w->len - rsa_len)) != 1 ||
        EVP_DecryptFinal_ex(c, out->data + l1, &l2) != 1) {
        kv_buf_free(out);
        goto done;
    }
    out->len = (size_t)(l1 + l2);
    ok = 1;
done:
    EVP_PKEY_CTX_free(p);
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* A released PKCS#8 key whose public part is the version's. */
static void check_pkcs8(const struct kv_buf *der, const struct ks_key *k)
{
    const unsigned char *p = der->data;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der->len);
    EVP_PKEY *pk = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
    CHECK(pk != NULL);
    if (pk != NULL && k->kty == KS_KTY_RSA) {
        BIGNUM *n = NULL;
        CHECK(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1);
        unsigned char buf[512];
        int len = n != NULL ? BN_bn2bin(n, buf) : 0;
        CHECK((size_t)len == k->pub.n.len && memcmp(buf, k->pub.n.data, (size_t)len) == 0);
        BN_free(n);
    } else if (pk != NULL) {
        unsigned char x[66];
        size_t xlen = 0;
        CHECK(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0,
                                              &xlen) == 1);
        unsigned char point[1 + 2 * 66];
        CHECK(xlen <= sizeof(point) &&
              EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                              sizeof(point), &xlen) == 1);
        memcpy(x, point + 1, k->pub.x.len);
        CHECK(xlen == 1 + 2 * k->pub.x.len && memcmp(x, k->pub.x.data, k->pub.x.len) == 0);
    }
    EVP_PKEY_free(pk);
    PKCS8_PRIV_KEY_INFO_free(p8);
}

static void release(void)
{
    struct ks_release_policy rp = policy(policy_a, 0);
    static const struct {
        enum ks_kty kty;
        enum ks_release_enc enc;
    } cases[] = {
        {KS_KTY_RSA, KS_RELEASE_CKM_RSA_AES_KEY_WRAP},
        {KS_KTY_RSA, KS_RELEASE_RSA_AES_KEY_WRAP_256},
        {KS_KTY_EC, KS_RELEASE_RSA_AES_KEY_WRAP_384},
        {KS_KTY_OCT, KS_RELEASE_RSA_AES_KEY_WRAP_256},
    };
    const EVP_MD *mds[] = {EVP_sha1(), EVP_sha256(), EVP_sha384()};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "rel%zu", i);
        struct ks_key *k = NULL, *r = NULL;
        struct kv_buf w = {0}, plain = {0};
        CHECK_ST(create("prem", name, cases[i].kty, 1, 1, &rp, &k), KV_OK);
        if (k == NULL)
            continue;
        CHECK_ST(ks_key_release(env, "prem", name, NULL, policy_a, cases[i].enc, &target_n,
                                &target_e, &r, &w),
                 KV_OK);
        CHECK(r != NULL && strcmp(r->version, k->version) == 0);
        CHECK(open_release(&w, mds[cases[i].enc], &plain));
        if (cases[i].kty == KS_KTY_OCT) {
            /* the released bytes wrap as the key does */
            unsigned char cek[32] = {7};
            struct ks_op_params op = {.alg = KS_ALG_A256KW, .value = {cek, sizeof(cek)}};
            struct ks_op_result res = {0};
            CHECK(plain.len == 32);
            CHECK_ST(ks_key_op(env, "prem", name, NULL, KS_OP_WRAP, &op, &res), KV_OK);
            unsigned char out[32];
            int l1 = 0, l2 = 0;
            EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
            EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
            CHECK(plain.len == 32 &&
                  EVP_DecryptInit_ex(c, EVP_aes_256_wrap(), NULL, plain.data, NULL) == 1 &&
                  EVP_DecryptUpdate(c, out, &l1, res.value.data, (int)res.value.len) == 1 &&
                  EVP_DecryptFinal_ex(c, out + l1, &l2) == 1 && l1 + l2 == 32 &&
                  memcmp(out, cek, 32) == 0);
            EVP_CIPHER_CTX_free(c);
            ks_op_result_clear(&res);
        } else if (plain.len > 0) {
            check_pkcs8(&plain, k);
        }
        /* the wrong hash does not open it */
        struct kv_buf again = {0};
        CHECK(!open_release(&w, mds[(cases[i].enc + 1) % 3], &again));
        kv_buf_free(&again);
        kv_buf_wipe(&plain);
        kv_buf_free(&w);
        ks_key_free(r);
        ks_key_free(k);
    }
}

static void release_refusals(void)
{
    struct ks_release_policy rp = policy(policy_a, 0);
    struct ks_key *k = NULL, *r = NULL;
    struct kv_buf w = {0};
    CHECK_ST(create("prem", "nx", KS_KTY_OCT, 1, 0, NULL, &k), KV_OK);
    ks_key_free(k);
    CHECK_ST(ks_key_release(env, "prem", "nx", NULL, policy_a, 0, &target_n, &target_e, &r, &w),
             KV_ERR_KEY_NOT_EXPORTABLE);
    CHECK_ST(ks_key_release(env, "prem", "none", NULL, policy_a, 0, &target_n, &target_e, &r, &w),
             KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(create("prem", "ref", KS_KTY_OCT, 1, 1, &rp, &k), KV_OK);
    ks_key_free(k);
    /* decided on another policy than the stored one */
    CHECK_ST(ks_key_release(env, "prem", "ref", NULL, policy_b, 0, &target_n, &target_e, &r, &w),
             KV_ERR_RELEASE_POLICY_CHANGED);
    /* a target key that is too short, or not RSA's shape */
    unsigned char small[128] = {0xc1};
    small[127] = 1;
    struct kv_buf n_small = {small, sizeof(small)};
    CHECK_ST(ks_key_release(env, "prem", "ref", NULL, policy_a, 0, &n_small, &target_e, &r, &w),
             KV_ERR_BAD_PARAM);
    CHECK_ST(ks_key_release(env, "prem", "ref", NULL, policy_a, (enum ks_release_enc)7, &target_n,
                            &target_e, &r, &w),
             KV_ERR_BAD_PARAM);
    struct ks_update off = {.enabled_set = 1, .enabled = 0};
    CHECK_ST(ks_key_update(env, "prem", "ref", NULL, &off, &k), KV_OK);
    ks_key_free(k);
    CHECK_ST(ks_key_release(env, "prem", "ref", NULL, policy_a, 0, &target_n, &target_e, &r, &w),
             KV_ERR_KEY_DISABLED);
    CHECK(r == NULL && w.data == NULL);

    enum ks_release_enc e;
    CHECK_ST(ks_release_enc_parse("RSA_AES_KEY_WRAP_384", &e), KV_OK);
    CHECK(e == KS_RELEASE_RSA_AES_KEY_WRAP_384);
    CHECK_STR(ks_release_enc_name(KS_RELEASE_CKM_RSA_AES_KEY_WRAP), "CKM_RSA_AES_KEY_WRAP");
    CHECK_ST(ks_release_enc_parse("rsa_aes_key_wrap_256", &e), KV_ERR_BAD_PARAM);
    CHECK(ks_release_enc_name((enum ks_release_enc)3) == NULL);
}

static void make_target(void)
{
    target = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    CHECK(target != NULL && tk_bn(target, OSSL_PKEY_PARAM_RSA_N, 0, &target_n) == 0 &&
          tk_bn(target, OSSL_PKEY_PARAM_RSA_E, 0, &target_e) == 0);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    CHECK(mkdtemp(dir) != NULL);
    make_target();
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    if (env != NULL && target != NULL) {
        put_vault("std", 0);
        put_vault("prem", 1);
        rules();
        update();
        release();
        release_refusals();
        hardware_keys(); /* last: it moves kvmock's clock */
    }
    ks_close(env);
    EVP_PKEY_free(target);
    kv_buf_free(&target_n);
    kv_buf_free(&target_e);
    check_remove_dir(dir);
    CHECK_DONE();
}
