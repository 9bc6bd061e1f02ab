/*
 * Fixed-key known answers against the openssl command line: the same keys in
 * kvmock's crypto and in `openssl pkeyutl`. RS256 signatures must be byte for
 * byte what openssl makes (PKCS#1 v1.5 is deterministic); PS256 and ES256
 * signatures made on either side must verify on the other.
 */
#define _GNU_SOURCE
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "crypto.h"

static const char rsa_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7nuZjLV2q8MdN\n"
    "wgO2t07lWhxsmvEW74Tr/BqF+7zXY7toarimbyGVwDYVXFiNtPUsdjuutH9ZrJ5X\n"
    "FO6ENKs7r3xeYnI9OZ/+xXJenuzZFMoKJ2HCrz0+utibPYn6gcDShLnd3Jqz/RRi\n"
    "2ZOOg37fV3h9j5VuNmawIMkPehB6Bq07BHzkG7sc8VbOzJffxYPLC66eE8Qh9Jwd\n"
    "FR1ZQSzmc04vvlycw4XTS5fSMZip2xVcHw2W0cXz9e2pGNz5YLwa4fsRQf/RFek+\n"
    "TMOH65VpBGFhRv3TV+lgAvm8XmVFKY0QscpjZe9dX0o6uF6i97SNmk9BUkK8x8Wg\n"
    "D9FZYWB3AgMBAAECggEAOIPTyBoZNe2TS2PetIIg/MsY9snxR0Rc2Ky23JcIuiSr\n"
    "hfdnqZKeHjqoz+RiNEVG+N6gea6bEcsCYx7F/gLTdYYVw2SKHtEl1ZtqKQBcPcOa\n"
    "XFaihv88RpIHvzNZRaEiEQez6RWTcBYStvftD6eiZuo1PDUtAObYJcOqbMQLBIZL\n"
    "ijP2oTAO16xQGhdolRhQcII7VK2TevCWmfAgGvCTN1KAGSLLbXMXSZA2s1pFiHEp\n"
    "PYMs5Cpsf3CSN3syHcBhjDZJGqNdDOi2uhXzVBKxLAJSN6fnAkeSVahJKNkl9rKo\n"
    "kVe4R4Pu8DkgDBewTQiqwYnvyZWO5PtV86w6EUrMQQKBgQD0CxLXBOVwNh00mmCL\n"
    "Zk1gQNa6Um95/FS1tuiqMfj5BX4CmhN91/I9MMmFDgngKK5U3/79sOZY13Jg9rk8\n"
    "HEXpHkQBk0JRRsFTdLfJRJtG0l2z47hry/Fwyq6qn6FcdW0CEJMKOPjN+ECm/oC5\n"
    "wkI/7jDdVD+oyv3vU3nOuyxJVwKBgQDE0CStzmwzLIDbQIBmT0/XLIsxcMHXbQnD\n"
    "YP1wxDlg1wP0324y6iHr+G1Y3REhztSthFq/7vRGU3iYnRZ7QeKXYOMnh4LbQ2LK\n"
    "KuJxUj1RmdW1nyRupmfTH1obqq5yq7QY7ztteqf5GgIyCQlN9RGiZZeED7tBj55A\n"
    "s3IAa3CN4QKBgQDUw4bEYadrAjLKNsFvJ1zUSxMqVE6OSpjL6FDGeVT4PnqS6COQ\n"
    "NqIiCRPYZdnkTXNX2gYkxYK99+/na5MpPfkReeqOeQV7eLV5/itxVNgPkb5R5HpX\n"
    "uPGhhYNsjEmRI2tLPooDgpIgeIxdS0uNKDi8Jf0CKb5qebeUXPG4c+TzdwKBgCNQ\n"
    "9kP59pB4O+cb++5f7QO/inqksSPm/QmCLfg+Pc2Sx7L5JN0eBlhBi92WTayzYJaC\n"
    "WYZ3an30HH/GMHKNsAtZ52kAeArAXMnKSDftefNal26vz+nLEnZf+dtdFVCeXwLa\n"
    "at+KUvnwINS5qmHCyBdMA5Q+/msVSmBx0tMgdGIBAoGAJiJCWZivdVBfVACKyO+5\n"
    "5Je92KcwYRyQ7PKg/2A/pbjL5ELf0w7R17fUPTPz6/kyKsGhgqy8PLiuZQKxLso6\n"
    "EfGk8eYy8Jn53B1eHEY8D4jFLKvD3APdpKp2bE6WvZSdnVPxhiLjPkG/UmKRO5V+\n"
    "CMHB1iZORo1q4mWvO5MSuFM=\n"
    "-----END PRIVATE KEY-----\n";

static const char ec_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIABuDF57pseDH4C3\n"
    "RnGA5XMU8d/IpptYqixaAZEG0lOhRANCAARbTo3CtTeUM8r7WdLkGijGuBEO0t3b\n"
    "Enwg2RG2S683nRh2yM2t3Qb/Cvv4Ze84qzTzD+HXLL8o5LdTEHug+7Gd\n"
    "-----END PRIVATE KEY-----\n";

static char dir[] = "/tmp/kvmock-cli-XXXXXX";

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(data, 1, len, f) == len);
    if (f != NULL)
        fclose(f);
}

static size_t read_file(const char *name, unsigned char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(out, 1, cap, f) : 0;
    if (f != NULL)
        fclose(f);
    return n;
}

/* Run openssl in the temp folder; 0 when it succeeded. */
static int openssl(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd %s && openssl %s >out.txt 2>&1", dir, args);
    return system(cmd);
}

/* Our material from a PEM key, through the PKCS#8 DER kvmock stores. */
static struct ks_material *load(const char *pem, enum ks_kty kty)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int len = pkey ? i2d_PrivateKey(pkey, &der) : -1;
    struct ks_material *m = NULL;
    CHECK(len > 0);
    if (len > 0)
        CHECK_ST(ks_material_deserialize(kty, der, (size_t)len, &m), KV_OK);
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return m;
}

static void rsa_cases(void)
{
    struct ks_material *m = load(rsa_pem, KS_KTY_RSA);
    if (m == NULL)
        return;
    write_file("rsa.pem", rsa_pem, strlen(rsa_pem));
    unsigned char digest[32];
    EVP_Digest("kvmock", 6, digest, NULL, EVP_sha256(), NULL);
    write_file("digest.bin", digest, sizeof(digest));

    /* RS256: identical bytes */
    struct ks_op_params p = {.alg = KS_ALG_RS256, .value = {digest, sizeof(digest)}};
    struct ks_op_result r = {0};
    CHECK_ST(ks_material_op(m, KS_OP_SIGN, &p, &r), KV_OK);
    CHECK(openssl("pkeyutl -sign -inkey rsa.pem -pkeyopt digest:sha256 -in digest.bin "
                  "-out rs256.sig") == 0);
    unsigned char sig[512];
    size_t n = read_file("rs256.sig", sig, sizeof(sig));
    CHECK(n == 256 && r.value.len == 256 && memcmp(sig, r.value.data, n) == 0);
    ks_op_result_clear(&r);

    /* PS256: ours verifies in openssl, openssl's verifies in ours */
    p.alg = KS_ALG_PS256;
    CHECK_ST(ks_material_op(m, KS_OP_SIGN, &p, &r), KV_OK);
    write_file("ps256.sig", r.value.data, r.value.len);
    CHECK(openssl("pkeyutl -verify -inkey rsa.pem -pkeyopt digest:sha256 -pkeyopt "
                  "rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -in digest.bin "
                  "-sigfile ps256.sig") == 0);
    ks_op_result_clear(&r);
    CHECK(openssl("pkeyutl -sign -inkey rsa.pem -pkeyopt digest:sha256 -pkeyopt "
                  "rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -in digest.bin "
                  "-out ps256-openssl.sig") == 0);
    n = read_file("ps256-openssl.sig", sig, sizeof(sig));
    struct ks_op_params v = {.alg = KS_ALG_PS256, .value = {sig, n}, .digest = {digest, 32}};
    CHECK_ST(ks_material_op(m, KS_OP_VERIFY, &v, &r), KV_OK);
    CHECK(r.verified == 1);
    ks_op_result_clear(&r);

    /* RSA-OAEP-256: openssl encrypts, we decrypt */
    write_file("secret.bin", "a 32-byte data encryption key!!!", 32);
    CHECK(openssl("pkeyutl -encrypt -inkey rsa.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt "
                  "rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in secret.bin "
                  "-out secret.enc") == 0);
    n = read_file("secret.enc", sig, sizeof(sig));
    struct ks_op_params d = {.alg = KS_ALG_RSA_OAEP_256, .value = {sig, n}};
    CHECK_ST(ks_material_op(m, KS_OP_UNWRAP, &d, &r), KV_OK);
    CHECK(r.value.len == 32 && memcmp(r.value.data, "a 32-byte data encryption key!!!", 32) == 0);
    ks_op_result_clear(&r);
    ks_material_free(m);
}

static void ec_cases(void)
{
    struct ks_material *m = load(ec_pem, KS_KTY_EC);
    if (m == NULL)
        return;
    write_file("ec.pem", ec_pem, strlen(ec_pem));
    unsigned char digest[32];
    EVP_Digest("kvmock", 6, digest, NULL, EVP_sha256(), NULL);
    write_file("digest.bin", digest, sizeof(digest));

    /* ours (raw R||S) converted to DER verifies in openssl */
    struct ks_op_params p = {.alg = KS_ALG_ES256, .value = {digest, sizeof(digest)}};
    struct ks_op_result r = {0};
    CHECK_ST(ks_material_op(m, KS_OP_SIGN, &p, &r), KV_OK);
    CHECK(r.value.len == 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(r.value.data, 32, NULL), BN_bin2bn(r.value.data + 32, 32, NULL));
    unsigned char *der = NULL;
    int dlen = i2d_ECDSA_SIG(es, &der);
    write_file("es256.sig", der, (size_t)dlen);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    ks_op_result_clear(&r);
    CHECK(openssl("pkeyutl -verify -inkey ec.pem -in digest.bin -sigfile es256.sig") == 0);

    /* openssl's DER signature, as raw R||S, verifies in ours */
    CHECK(openssl("pkeyutl -sign -inkey ec.pem -in digest.bin -out es256-openssl.sig") == 0);
    unsigned char sig[128], raw[64] = {0};
    size_t n = read_file("es256-openssl.sig", sig, sizeof(sig));
    const unsigned char *q = sig;
    es = d2i_ECDSA_SIG(NULL, &q, (long)n);
    CHECK(es != NULL);
    if (es != NULL) {
        const BIGNUM *br, *bs;
        ECDSA_SIG_get0(es, &br, &bs);
        BN_bn2binpad(br, raw, 32);
        BN_bn2binpad(bs, raw + 32, 32);
        ECDSA_SIG_free(es);
    }
    struct ks_op_params v = {.alg = KS_ALG_ES256, .value = {raw, 64}, .digest = {digest, 32}};
    CHECK_ST(ks_material_op(m, KS_OP_VERIFY, &v, &r), KV_OK);
    CHECK(r.verified == 1);
    ks_op_result_clear(&r);
    ks_material_free(m);
}

int main(void)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "the openssl command is required for this test\n");
        return 1;
    }
    CHECK(mkdtemp(dir) != NULL);
    rsa_cases();
    ec_cases();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    CHECK_DONE();
}
