/* The local CA and the server certificate: files, modes, chain, names, reuse, refusals. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "kv_file.h"
#include "kv_status.h"
#include "tls.h"

static char dir[] = "/tmp/kvmock-tls-XXXXXX";
static char tls_dir[512], ca_pem[512], ca_key[512], server_pem[512], release_pem[512];

static unsigned file_mode(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 07777;
    return (unsigned)(sb.st_mode & 07777);
}

static char *slurp(const char *path, size_t *len)
{
    char *buf = NULL;
    if (kv_file_read(path, 1 << 20, &buf, len) != KV_OK)
        return NULL;
    return buf;
}

static X509 *load_cert(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL)
        return NULL;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return cert;
}

static EVP_PKEY *load_key(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL)
        return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    return key;
}

/* Verify @p cert against @p ca as a TLS server, with RFC 5280 strict checks, optionally for
 * @p host. Returns the X509_V_ result. */
static int verify(X509 *cert, X509 *ca, const char *host)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int result = -1;
    if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
        X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
        goto out;
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (host != NULL)
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    X509_verify_cert(ctx);
    result = X509_STORE_CTX_get_error(ctx);
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return result;
}

static int has_host(X509 *cert, const char *host)
{
    return X509_check_host(cert, host, 0, 0, NULL) == 1;
}

static int has_ip(X509 *cert, const char *ip)
{
    return X509_check_ip_asc(cert, ip, 0) == 1;
}

static int san_count(X509 *cert)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int n = gens != NULL ? sk_GENERAL_NAME_num(gens) : -1;
    GENERAL_NAMES_free(gens);
    return n;
}

/* The number of entries in the tls folder (no temporary files may be left over). */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        char sub[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    return a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0;
}

static const char *const hosts[] = {"kvmock", "10.1.2.3", "localhost", "::1",
                                    "KVMOCK", "",         "fd00::7"};
#define NHOSTS (sizeof(hosts) / sizeof(hosts[0]))

/* The first start: files, modes and the certificates' contents. */
static void check_first_start(void)
{
    struct srv_tls_paths p;
    memset(&p, 0, sizeof(p));
    CHECK_ST(srv_tls_prepare(dir, hosts, NHOSTS, &p), KV_OK);
    CHECK_STR(p.ca_pem, ca_pem);
    CHECK_STR(p.server_pem, server_pem);

    CHECK(file_mode(tls_dir) == 0700);
    CHECK(file_mode(ca_key) == 0600);
    CHECK(file_mode(server_pem) == 0600);
    /* the key release certificate comes with the first release, not at start */
    CHECK(access(release_pem, F_OK) != 0);
    CHECK_STR(p.release_pem, release_pem);
    CHECK(file_mode(ca_pem) != 07777 && (file_mode(ca_pem) & 0022) == 0);
    CHECK(count_entries(tls_dir) == 3);

    X509 *ca = load_cert(ca_pem);
    X509 *srv = load_cert(server_pem);
    EVP_PKEY *cakey = load_key(ca_key);
    EVP_PKEY *srvkey = load_key(server_pem);
    CHECK(ca != NULL && srv != NULL && cakey != NULL && srvkey != NULL);
    if (ca == NULL || srv == NULL || cakey == NULL || srvkey == NULL)
        goto out;

    /* ca.pem holds no key; server.pem holds the server's key */
    size_t len = 0;
    char *text = slurp(ca_pem, &len);
    CHECK(text != NULL && strstr(text, "PRIVATE KEY") == NULL);
    free(text);
    CHECK(X509_check_private_key(ca, cakey) == 1);
    CHECK(X509_check_private_key(srv, srvkey) == 1);
    CHECK(EVP_PKEY_eq(srvkey, cakey) != 1);
    CHECK(EVP_PKEY_get_id(cakey) == EVP_PKEY_EC && EVP_PKEY_get_bits(cakey) == 256);
    CHECK(EVP_PKEY_get_id(srvkey) == EVP_PKEY_EC && EVP_PKEY_get_bits(srvkey) == 256);

    /* the CA */
    char cn[128] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn));
    CHECK_STR(cn, "kvmock local CA");
    CHECK(X509_get_version(ca) == X509_VERSION_3);
    CHECK(X509_check_ca(ca) == 1);
    CHECK((X509_get_extension_flags(ca) & EXFLAG_SS) != 0);
    CHECK(X509_get_key_usage(ca) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    CHECK(X509_get0_subject_key_id(ca) != NULL);
    CHECK(X509_get0_authority_key_id(ca) != NULL);
    CHECK(X509_get_signature_nid(ca) == NID_ecdsa_with_SHA256);
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    CHECK(bc != NULL && bc->ca && crit == 1);
    BASIC_CONSTRAINTS_free(bc);
    int days = 0, secs = 0;
    CHECK(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(ca)) == 1);
    CHECK(days >= 3649 && days <= 3650);
    CHECK(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(ca)) == 1);
    CHECK(days == 0 && secs <= -3590 && secs >= -3610);
    const ASN1_INTEGER *serial = X509_get0_serialNumber(ca);
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    CHECK(bn != NULL && !BN_is_negative(bn) && BN_num_bits(bn) > 64 && BN_num_bits(bn) <= 128);
    BN_free(bn);

    /* the server certificate */
    X509_NAME_get_text_by_NID(X509_get_subject_name(srv), NID_commonName, cn, sizeof(cn));
    CHECK_STR(cn, "localhost");
    CHECK(X509_NAME_cmp(X509_get_issuer_name(srv), X509_get_subject_name(ca)) == 0);
    CHECK(X509_get_version(srv) == X509_VERSION_3);
    CHECK(X509_check_ca(srv) == 0);
    CHECK(X509_get_key_usage(srv) == KU_DIGITAL_SIGNATURE);
    CHECK(X509_get_extended_key_usage(srv) == XKU_SSL_SERVER);
    CHECK(X509_get_signature_nid(srv) == NID_ecdsa_with_SHA256);
    CHECK(X509_get0_authority_key_id(srv) != NULL &&
          ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(srv), X509_get0_subject_key_id(ca)) ==
              0);
    CHECK(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(srv)) == 1);
    CHECK(days >= 824 && days <= 825);
    CHECK(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(srv)) == 1);
    CHECK(days == 0 && secs <= -3590 && secs >= -3610);

    /* the chain, under RFC 5280 strict checks, for a TLS server */
    CHECK(verify(srv, ca, NULL) == X509_V_OK);
    CHECK(verify(srv, ca, "my-vault.vault.localhost") == X509_V_OK);
    CHECK(verify(srv, ca, "evil.example") == X509_V_ERR_HOSTNAME_MISMATCH);

    /* names: 5 built in, plus kvmock, 10.1.2.3 and fd00::7 (duplicates and "" skipped) */
    CHECK(san_count(srv) == 8);
    CHECK(has_host(srv, "localhost"));
    CHECK(has_host(srv, "LOCALHOST"));
    CHECK(has_host(srv, "default.vault.localhost"));
    CHECK(has_host(srv, "my-vault.vault.localhost"));
    CHECK(has_host(srv, "my-hsm.managedhsm.localhost")); /* Managed HSMs */
    CHECK(verify(srv, ca, "my-hsm.managedhsm.localhost") == X509_V_OK);
    CHECK(has_host(srv, "kvmock"));
    CHECK(has_ip(srv, "127.0.0.1"));
    CHECK(has_ip(srv, "::1"));
    CHECK(has_ip(srv, "0:0:0:0:0:0:0:1"));
    CHECK(has_ip(srv, "10.1.2.3"));
    CHECK(has_ip(srv, "fd00::7"));
    CHECK(!has_host(srv, "evil.example"));
    CHECK(!has_host(srv, "vault.localhost"));     /* the wildcard needs a label */
    CHECK(!has_host(srv, "a.b.vault.localhost")); /* and only one */
    CHECK(!has_host(srv, "kvmock.example"));
    CHECK(!has_ip(srv, "10.1.2.4"));
    CHECK(!has_ip(srv, "127.0.0.2"));

out:
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(srvkey);
}

/* A second start keeps the CA and re-issues the server certificate. */
static void check_restart(void)
{
    size_t ca1_len = 0, key1_len = 0, srv1_len = 0, ca2_len = 0, key2_len = 0, srv2_len = 0;
    char *ca1 = slurp(ca_pem, &ca1_len), *key1 = slurp(ca_key, &key1_len);
    char *srv1 = slurp(server_pem, &srv1_len);
    X509 *old_srv = load_cert(server_pem);

    /* a loose folder mode is tightened */
    CHECK(chmod(tls_dir, 0755) == 0);
    struct srv_tls_paths p;
    const char *const one[] = {"other-host"};
    CHECK_ST(srv_tls_prepare(dir, one, 1, &p), KV_OK);
    CHECK(file_mode(tls_dir) == 0700);
    CHECK(file_mode(server_pem) == 0600);
    CHECK(count_entries(tls_dir) == 3);

    char *ca2 = slurp(ca_pem, &ca2_len), *key2 = slurp(ca_key, &key2_len);
    char *srv2 = slurp(server_pem, &srv2_len);
    CHECK(same_bytes(ca1, ca1_len, ca2, ca2_len));
    CHECK(same_bytes(key1, key1_len, key2, key2_len));
    CHECK(srv2 != NULL && !same_bytes(srv1, srv1_len, srv2, srv2_len));

    X509 *ca = load_cert(ca_pem);
    X509 *srv = load_cert(server_pem);
    CHECK(ca != NULL && srv != NULL && old_srv != NULL);
    if (ca != NULL && srv != NULL && old_srv != NULL) {
        CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(srv), X509_get0_serialNumber(old_srv)) != 0);
        CHECK(verify(srv, ca, "other-host") == X509_V_OK);
        CHECK(verify(srv, ca, "x.vault.localhost") == X509_V_OK);
        CHECK(has_ip(srv, "::1") && has_ip(srv, "127.0.0.1"));
        CHECK(!has_host(srv, "kvmock")); /* only the names of this start */
        CHECK(san_count(srv) == 6);
    }
    X509_free(ca);
    X509_free(srv);
    X509_free(old_srv);
    free(ca1);
    free(key1);
    free(srv1);
    free(ca2);
    free(key2);
    free(srv2);
}

/* The key release certificate: made at the first signature (RSA-2048, for the server's
 * names, issued by the CA), its key kept and its certificate renewed by later starts; the
 * signer's JWS carries Key Vault's header and verifies with it. */
static void check_release_signer(void)
{
    struct srv_tls_paths p;
    const char *const names[] = {"kvmock"};
    struct srv_signer *first = NULL;
    char *jws1 = NULL;
    CHECK_ST(srv_tls_prepare(dir, names, 1, &p), KV_OK);
    CHECK(access(release_pem, F_OK) != 0);
    CHECK_ST(srv_signer_open(&p, names, 1, &first), KV_OK);
    CHECK(access(release_pem, F_OK) != 0);
    if (first != NULL)
        CHECK_ST(srv_signer_sign(first, "{}", 2, &jws1), KV_OK);
    CHECK(jws1 != NULL && file_mode(release_pem) == 0600 && count_entries(tls_dir) == 4);
    free(jws1);
    srv_signer_free(first);

    X509 *ca = load_cert(ca_pem), *rel = load_cert(release_pem);
    EVP_PKEY *key1 = load_key(release_pem);
    CHECK(ca != NULL && rel != NULL && key1 != NULL);
    CHECK_ST(srv_tls_prepare(dir, names, 1, &p), KV_OK);
    X509 *rel2 = load_cert(release_pem);
    EVP_PKEY *key2 = load_key(release_pem);
    CHECK(rel2 != NULL && key2 != NULL);
    if (ca == NULL || rel == NULL || rel2 == NULL || key1 == NULL || key2 == NULL)
        goto out;
    CHECK(EVP_PKEY_is_a(key2, "RSA") && EVP_PKEY_get_bits(key2) == 2048);
    CHECK(EVP_PKEY_eq(key1, key2) == 1); /* made once, kept */
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(rel), X509_get0_serialNumber(rel2)) != 0);
    CHECK(X509_check_host(rel2, "kvmock", 0, 0, NULL) == 1);
    CHECK(X509_check_host(rel2, "cmk.vault.localhost", 0, 0, NULL) == 1);
    CHECK(X509_verify(rel2, X509_get0_pubkey(ca)) == 1);

    struct srv_signer *s = NULL;
    CHECK_ST(srv_signer_open(&p, names, 1, &s), KV_OK);
    char *jws = NULL;
    static const char payload[] = "{\"request\":{}}";
    if (s != NULL)
        CHECK_ST(srv_signer_sign(s, payload, strlen(payload), &jws), KV_OK);
    const char *d1 = jws != NULL ? strchr(jws, '.') : NULL;
    const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    CHECK(d2 != NULL);
    if (d2 != NULL) {
        /* the header: {"alg":"RS256","kid":"<SHA-1 hex>",...,"x5c":[leaf, CA]} */
        unsigned char raw[8192], sig[512];
        char b64[8192];
        size_t n = (size_t)(d1 - jws);
        CHECK(n < sizeof(b64) - 4);
        memcpy(b64, jws, n);
        for (size_t i = 0; i < n; i++)
            b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
        while (n % 4 != 0)
            b64[n++] = '=';
        int len = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)n);
        CHECK(len > 0);
        raw[len > 0 ? len : 0] = '\0';
        static const char head[] = "{\"alg\":\"RS256\",\"kid\":\"";
        CHECK(strncmp((char *)raw, head, sizeof(head) - 1) == 0);
        CHECK(strstr((char *)raw, "\"typ\":\"JWT\"") != NULL);
        CHECK(strstr((char *)raw, "\"x5c\":[\"MII") != NULL);
        unsigned char sha1[20];
        unsigned sl = 0;
        char hex[41];
        CHECK(X509_digest(rel2, EVP_sha1(), sha1, &sl) == 1);
        for (size_t i = 0; i < 20; i++)
            snprintf(hex + 2 * i, 3, "%02X", sha1[i]);
        CHECK(strstr((char *)raw, hex) != NULL);
        /* the signature over header.payload, with the certificate's key */
        n = strlen(d2 + 1);
        CHECK(n < sizeof(b64) - 4);
        memcpy(b64, d2 + 1, n);
        for (size_t i = 0; i < n; i++)
            b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
        while (n % 4 != 0)
            b64[n++] = '=';
        len = EVP_DecodeBlock(sig, (unsigned char *)b64, (int)n);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        CHECK(md != NULL &&
              EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(rel2)) == 1 &&
              EVP_DigestVerify(md, sig, 256, (const unsigned char *)jws, (size_t)(d2 - jws)) == 1);
        CHECK(len >= 256);
        EVP_MD_CTX_free(md);
    }
    free(jws);
    srv_signer_free(s);
out:
    X509_free(ca);
    X509_free(rel);
    X509_free(rel2);
    EVP_PKEY_free(key1);
    EVP_PKEY_free(key2);
}

/* An unusable CA is refused, never silently replaced. */
static void check_refusals(void)
{
    struct srv_tls_paths p;
    size_t ca1_len = 0, ca2_len = 0, key_len = 0;
    char *ca1 = slurp(ca_pem, &ca1_len);
    char *key = slurp(ca_key, &key_len);
    char saved[600];
    snprintf(saved, sizeof(saved), "%s/saved.key", dir);
    CHECK(rename(ca_key, saved) == 0);

    /* ca.pem without ca.key */
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_ERR_INTERNAL);
    CHECK(access(ca_key, F_OK) != 0);

    /* a ca.key readable by others */
    CHECK_ST(kv_file_write_atomic(ca_key, key, key_len, 0644), KV_OK);
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_ERR_INTERNAL);

    /* a ca.key that is not a key */
    CHECK_ST(kv_file_write_atomic(ca_key, "garbage\n", 8, 0600), KV_OK);
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_ERR_INTERNAL);

    /* a ca.key of another CA */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    CHECK(other != NULL && bio != NULL &&
          PEM_write_bio_PrivateKey(bio, other, NULL, NULL, 0, NULL, NULL) == 1);
    char *data = NULL;
    long dlen = BIO_get_mem_data(bio, &data);
    CHECK_ST(kv_file_write_atomic(ca_key, data, (size_t)dlen, 0600), KV_OK);
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_ERR_INTERNAL);
    BIO_free(bio);
    EVP_PKEY_free(other);

    /* none of these touched ca.pem */
    char *ca2 = slurp(ca_pem, &ca2_len);
    CHECK(same_bytes(ca1, ca1_len, ca2, ca2_len));
    free(ca2);

    /* the right key again: accepted */
    CHECK(rename(saved, ca_key) == 0);
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_OK);

    /* a host name that is neither a name nor an address */
    const char *const bad[] = {"bad name"};
    CHECK_ST(srv_tls_prepare(dir, bad, 1, &p), KV_ERR_INTERNAL);

    /* no ca.pem: a new CA replaces a leftover ca.key */
    CHECK(unlink(ca_pem) == 0);
    CHECK_ST(srv_tls_prepare(dir, NULL, 0, &p), KV_OK);
    ca2 = slurp(ca_pem, &ca2_len);
    size_t key2_len = 0;
    char *key2 = slurp(ca_key, &key2_len);
    CHECK(ca2 != NULL && !same_bytes(ca1, ca1_len, ca2, ca2_len));
    CHECK(key2 != NULL && !same_bytes(key, key_len, key2, key2_len));
    X509 *ca = load_cert(ca_pem), *srv = load_cert(server_pem);
    CHECK(ca != NULL && srv != NULL && verify(srv, ca, "localhost") == X509_V_OK);
    X509_free(ca);
    X509_free(srv);
    free(ca2);
    free(key2);
    free(ca1);
    free(key);

    /* a data folder that does not exist yet is created */
    char fresh[600];
    snprintf(fresh, sizeof(fresh), "%s/new", dir);
    CHECK_ST(srv_tls_prepare(fresh, NULL, 0, &p), KV_OK);
    CHECK(strstr(p.ca_pem, "/new/tls/ca.pem") != NULL);

    /* a path that does not fit */
    char *longdir = malloc(5000);
    memset(longdir, 'a', 4999);
    longdir[0] = '/';
    longdir[4999] = '\0';
    CHECK_ST(srv_tls_prepare(longdir, NULL, 0, &p), KV_ERR_INTERNAL);
    free(longdir);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(tls_dir, sizeof(tls_dir), "%s/tls", dir);
    snprintf(ca_pem, sizeof(ca_pem), "%s/tls/ca.pem", dir);
    snprintf(ca_key, sizeof(ca_key), "%s/tls/ca.key", dir);
    snprintf(server_pem, sizeof(server_pem), "%s/tls/server.pem", dir);
    snprintf(release_pem, sizeof(release_pem), "%s/tls/release.pem", dir);

    check_first_start();
    check_restart();
    check_release_signer();
    check_refusals();

    remove_tree(dir);
    CHECK(access(dir, F_OK) != 0);
    CHECK_DONE();
}
