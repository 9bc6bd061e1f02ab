/* The local CA and the server certificate (tls.h). */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kv_file.h"
#include "kv_log.h"

#define TLS_SUBDIR      "tls"
#define CA_PEM_NAME     "ca.pem"
#define CA_KEY_NAME     "ca.key"
#define SERVER_PEM_NAME "server.pem"

#define DIR_MODE  0700u
#define KEY_MODE  0600u /* ca.key and server.pem */
#define CERT_MODE 0644u /* ca.pem: public */

#define CA_CN         "kvmock local CA"
#define SERVER_CN     "localhost"
#define EC_CURVE      "P-256"
#define BACKDATE_SECS (60L * 60)  /* notBefore is an hour ago, for clock skew */
#define CA_DAYS       3650        /* ten years */
#define SERVER_DAYS   825         /* the longest browsers and Apple accept */
#define CA_WARN_DAYS  30          /* warn when the CA has less left than this */
#define SERIAL_BYTES  16          /* 128-bit serial numbers */
#define PEM_FILE_MAX  (64 * 1024) /* larger ca.pem / ca.key files are refused */
#define HOSTNAME_MAX  253

/* Names every server certificate carries, before the configured ones. */
static const char *const builtin_names[] = {"localhost", "127.0.0.1", "::1", "*.vault.localhost"};

/* Log @p what with the first queued OpenSSL error, then clear the queue. */
static void log_crypto(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    kv_log(KV_LOG_ERROR, "TLS: %s failed%s%s", what, e != 0 ? ": " : "", buf);
    ERR_clear_error();
}

/* Never prompt on the terminal for a passphrase: our keys have none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static enum kv_status join(char *dst, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        kv_log(KV_LOG_ERROR, "TLS: path '%.64s.../%s' is too long", dir, name);
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

/* mkdir @p path with mode 0700 when missing; with @p tighten, chmod an existing one to 0700. */
static enum kv_status ensure_dir(const char *path, int tighten)
{
    if (mkdir(path, DIR_MODE) == 0)
        return KV_OK;
    if (errno != EEXIST) {
        kv_log(KV_LOG_ERROR, "TLS: cannot create folder %s: %s", path, strerror(errno));
        return KV_ERR_INTERNAL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        kv_log(KV_LOG_ERROR, "TLS: cannot stat %s: %s", path, strerror(errno));
        return KV_ERR_INTERNAL;
    }
    if (!S_ISDIR(sb.st_mode)) {
        kv_log(KV_LOG_ERROR, "TLS: %s exists and is not a folder", path);
        return KV_ERR_INTERNAL;
    }
    if (tighten && (sb.st_mode & 077) != 0) {
        if (chmod(path, DIR_MODE) != 0) {
            kv_log(KV_LOG_ERROR, "TLS: cannot chmod 700 %s: %s", path, strerror(errno));
            return KV_ERR_INTERNAL;
        }
        kv_log(KV_LOG_WARN, "TLS: %s was mode %03o; set it to 700", path,
               (unsigned)(sb.st_mode & 0777));
    }
    return KV_OK;
}

/* fsync a folder so that renames into it survive a crash; a failure only warns. */
static void sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        kv_log(KV_LOG_WARN, "TLS: cannot fsync folder %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Read a whole PEM file; the caller wipes (if secret) and frees *out. */
static enum kv_status read_file(const char *path, char **out, size_t *len)
{
    errno = 0;
    enum kv_status st = kv_file_read(path, PEM_FILE_MAX, out, len);
    if (st != KV_OK) {
        int e = errno;
        kv_log(KV_LOG_ERROR, "TLS: cannot read %s: %s", path,
               e != 0 ? strerror(e) : "too large or unreadable");
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

/* Write @p cert and/or @p key as PEM to @p path atomically with @p mode. */
static enum kv_status write_pem(const char *path, X509 *cert, EVP_PKEY *key, unsigned mode)
{
    enum kv_status st = KV_ERR_CRYPTO;
    /* A memory BIO wipes its buffer when it grows and when it is freed. */
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        log_crypto("BIO_new");
        goto out;
    }
    if (cert != NULL && PEM_write_bio_X509(bio, cert) != 1) {
        log_crypto("writing a certificate as PEM");
        goto out;
    }
    if (key != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        log_crypto("writing a private key as PEM");
        goto out;
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0 || data == NULL) {
        log_crypto("BIO_get_mem_data");
        goto out;
    }
    if (kv_file_write_atomic(path, data, (size_t)len, mode) != KV_OK) {
        /* kv_file_write_atomic logged the path and errno */
        st = KV_ERR_INTERNAL;
        goto out;
    }
    st = KV_OK;
out:
    BIO_free(bio);
    return st;
}

static int set_random_serial(X509 *cert)
{
    unsigned char bytes[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    int ok = 0;
    do {
        if (RAND_bytes(bytes, sizeof(bytes)) != 1)
            goto out;
        bytes[0] &= 0x7f; /* DER INTEGERs are signed: keep it positive within 16 octets */
    } while (bytes[0] == 0 && bytes[1] == 0); /* and not tiny */
    bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
    if (bn == NULL)
        goto out;
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    if (serial == NULL)
        goto out;
    ok = X509_set_serialNumber(cert, serial) == 1;
out:
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok;
}

/* Add one extension given in openssl.cnf syntax, e.g. "critical,CA:TRUE". */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    int ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/*
 * A new v3 certificate for @p key, CN @p cn, signed later by @p issuer
 * (NULL: self-issued), valid from an hour ago for @p days days, but never
 * past the issuer's notAfter.
 */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, long days)
{
    X509 *cert = X509_new();
    if (cert == NULL)
        return NULL;
    X509_NAME *name = X509_get_subject_name(cert);
    if (X509_set_version(cert, X509_VERSION_3) != 1 || !set_random_serial(cert) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -BACKDATE_SECS) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) == NULL ||
        X509_set_pubkey(cert, key) != 1)
        goto fail;
    if (issuer != NULL &&
        ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(issuer)) > 0 &&
        X509_set1_notAfter(cert, X509_get0_notAfter(issuer)) != 1)
        goto fail;
    return cert;
fail:
    X509_free(cert);
    return NULL;
}

/* Append @p host to @p gens as an IP or DNS name, unless it is already there. */
static enum kv_status san_add(GENERAL_NAMES *gens, const char *host)
{
    size_t len = strlen(host);
    if (len == 0)
        return KV_OK;
    if (len > HOSTNAME_MAX) {
        kv_log(KV_LOG_ERROR, "TLS: host name '%.32s...' is too long", host);
        return KV_ERR_INTERNAL;
    }

    ERR_set_mark();
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host); /* NULL: not an address */
    ERR_pop_to_mark();
    int type = ip != NULL ? GEN_IPADD : GEN_DNS;

    if (ip == NULL) {
        for (size_t i = 0; i < len; i++) {
            char c = host[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '*' || c == '_')) {
                kv_log(KV_LOG_ERROR, "TLS: '%s' is not a host name or IP address", host);
                return KV_ERR_INTERNAL;
            }
        }
    }

    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        int have_type;
        void *have = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &have_type);
        if (have_type != type)
            continue;
        if (type == GEN_IPADD) {
            if (ASN1_STRING_cmp(have, ip) == 0) {
                ASN1_OCTET_STRING_free(ip);
                return KV_OK;
            }
        } else {
            const ASN1_IA5STRING *s = have;
            if ((size_t)ASN1_STRING_length(s) == len &&
                strncasecmp((const char *)ASN1_STRING_get0_data(s), host, len) == 0)
                return KV_OK;
        }
    }

    enum kv_status st = KV_ERR_CRYPTO;
    ASN1_IA5STRING *dns = NULL;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (gn == NULL)
        goto out;
    if (type == GEN_DNS) {
        dns = ASN1_IA5STRING_new();
        if (dns == NULL || ASN1_STRING_set(dns, host, (int)len) != 1)
            goto out;
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
        dns = NULL;
    } else {
        GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
        ip = NULL;
    }
    if (sk_GENERAL_NAME_push(gens, gn) <= 0)
        goto out;
    gn = NULL;
    st = KV_OK;
out:
    if (st != KV_OK)
        log_crypto("building the subjectAltName");
    GENERAL_NAME_free(gn);
    ASN1_IA5STRING_free(dns);
    ASN1_OCTET_STRING_free(ip);
    return st;
}

/* Create a new CA: write ca.key (0600) first, then ca.pem, so a ca.pem never lacks its key. */
static enum kv_status create_ca(const char *pem_path, const char *key_path, X509 **out_cert,
                                EVP_PKEY **out_key)
{
    enum kv_status st = KV_ERR_CRYPTO;
    X509 *cert = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", EC_CURVE);
    if (key == NULL) {
        log_crypto("generating the CA key");
        goto out;
    }
    cert = new_cert(key, CA_CN, NULL, CA_DAYS);
    if (cert == NULL || !add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
        !add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(cert, key, EVP_sha256()) <= 0) {
        log_crypto("creating the CA certificate");
        goto out;
    }
    st = write_pem(key_path, NULL, key, KEY_MODE);
    if (st != KV_OK)
        goto out;
    st = write_pem(pem_path, cert, NULL, CERT_MODE);
    if (st != KV_OK)
        goto out;
    kv_log(KV_LOG_INFO, "TLS: created a new CA in %s; clients must trust it", pem_path);
    *out_cert = cert;
    *out_key = key;
    cert = NULL;
    key = NULL;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return st;
}

/* Load the existing CA and check that ca.key belongs to ca.pem and that it is usable. */
static enum kv_status load_ca(const char *tls_dir, const char *pem_path, const char *key_path,
                              X509 **out_cert, EVP_PKEY **out_key)
{
    enum kv_status st = KV_ERR_INTERNAL;
    char *pem = NULL, *kpem = NULL;
    size_t pem_len = 0, kpem_len = 0;
    BIO *bio = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;

    if (read_file(pem_path, &pem, &pem_len) != KV_OK)
        goto out;
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL) {
        st = KV_ERR_CRYPTO;
        log_crypto("BIO_new_mem_buf");
        goto out;
    }
    cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    bio = NULL;
    if (cert == NULL) {
        log_crypto("reading the CA certificate");
        kv_log(KV_LOG_ERROR,
               "TLS: %s is not a PEM certificate; restore it, or delete %s to "
               "create a new CA (clients must then trust the new ca.pem)",
               pem_path, tls_dir);
        goto out;
    }

    struct stat sb;
    if (stat(key_path, &sb) != 0) {
        kv_log(KV_LOG_ERROR,
               "TLS: %s exists but its key %s cannot be used: %s; restore it, or "
               "delete %s to create a new CA (clients must then trust the new "
               "ca.pem)",
               pem_path, key_path, strerror(errno), tls_dir);
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        kv_log(KV_LOG_ERROR, "TLS: %s is readable by others (mode %03o); it must be 0600", key_path,
               (unsigned)(sb.st_mode & 0777));
        goto out;
    }
    if (read_file(key_path, &kpem, &kpem_len) != KV_OK)
        goto out;
    bio = BIO_new_mem_buf(kpem, (int)kpem_len);
    if (bio == NULL) {
        st = KV_ERR_CRYPTO;
        log_crypto("BIO_new_mem_buf");
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (key == NULL) {
        log_crypto("reading the CA key");
        kv_log(KV_LOG_ERROR, "TLS: %s is not an unencrypted PEM private key", key_path);
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
        ERR_clear_error();
        kv_log(KV_LOG_ERROR,
               "TLS: %s does not match %s; restore the matching key, or delete %s "
               "to create a new CA (clients must then trust the new ca.pem)",
               key_path, pem_path, tls_dir);
        goto out;
    }
    if (X509_check_ca(cert) != 1) {
        kv_log(KV_LOG_ERROR, "TLS: %s is not a CA certificate; delete %s to create a new CA",
               pem_path, tls_dir);
        goto out;
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) != 1) {
        st = KV_ERR_CRYPTO;
        log_crypto("reading the CA's notAfter");
        goto out;
    }
    if (days < 0 || secs < 0 || (days == 0 && secs == 0)) {
        kv_log(KV_LOG_ERROR,
               "TLS: the CA in %s has expired; delete %s to create a new CA "
               "(clients must then trust the new ca.pem)",
               pem_path, tls_dir);
        goto out;
    }
    if (days < CA_WARN_DAYS)
        kv_log(KV_LOG_WARN, "TLS: the CA in %s expires in %d days; delete %s to create a new CA",
               pem_path, days, tls_dir);

    *out_cert = cert;
    *out_key = key;
    cert = NULL;
    key = NULL;
    st = KV_OK;
out:
    BIO_free(bio);
    if (kpem != NULL) {
        OPENSSL_cleanse(kpem, kpem_len);
        free(kpem);
    }
    free(pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    return st;
}

/* Issue a server certificate for the built-in names and @p hostnames, and write server.pem. */
static enum kv_status issue_server(const char *path, X509 *ca, EVP_PKEY *ca_key,
                                   const char *const *hostnames, size_t n)
{
    enum kv_status st = KV_ERR_CRYPTO;
    X509 *cert = NULL;
    GENERAL_NAMES *gens = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", EC_CURVE);
    if (key == NULL) {
        log_crypto("generating the server key");
        goto out;
    }

    gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL) {
        log_crypto("building the subjectAltName");
        goto out;
    }
    for (size_t i = 0; i < sizeof(builtin_names) / sizeof(builtin_names[0]); i++) {
        st = san_add(gens, builtin_names[i]);
        if (st != KV_OK)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        st = san_add(gens, hostnames[i] != NULL ? hostnames[i] : "");
        if (st != KV_OK)
            goto out;
    }
    st = KV_ERR_CRYPTO;

    cert = new_cert(key, SERVER_CN, ca, SERVER_DAYS);
    if (cert == NULL || !add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(cert, ca, NID_ext_key_usage, "serverAuth") ||
        !add_ext(cert, ca, NID_subject_key_identifier, "hash") ||
        !add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") ||
        X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509_sign(cert, ca_key, EVP_sha256()) <= 0) {
        log_crypto("issuing the server certificate");
        goto out;
    }
    st = write_pem(path, cert, key, KEY_MODE);
    if (st != KV_OK)
        goto out;
    kv_log(KV_LOG_INFO, "TLS: issued a server certificate for %d names in %s",
           sk_GENERAL_NAME_num(gens), path);
out:
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_free(cert);
    EVP_PKEY_free(key);
    return st;
}

enum kv_status srv_tls_prepare(const char *data_dir, const char *const *hostnames, size_t n,
                               struct srv_tls_paths *out)
{
    enum kv_status st;
    char tls_dir[4096], key_path[4096];
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    struct srv_tls_paths paths;

    if ((st = join(tls_dir, sizeof(tls_dir), data_dir, TLS_SUBDIR)) != KV_OK ||
        (st = join(paths.ca_pem, sizeof(paths.ca_pem), tls_dir, CA_PEM_NAME)) != KV_OK ||
        (st = join(key_path, sizeof(key_path), tls_dir, CA_KEY_NAME)) != KV_OK ||
        (st = join(paths.server_pem, sizeof(paths.server_pem), tls_dir, SERVER_PEM_NAME)) != KV_OK)
        goto out;
    if ((st = ensure_dir(data_dir, 0)) != KV_OK || (st = ensure_dir(tls_dir, 1)) != KV_OK)
        goto out;

    struct stat sb;
    if (stat(paths.ca_pem, &sb) == 0) {
        st = load_ca(tls_dir, paths.ca_pem, key_path, &ca, &ca_key);
    } else if (errno == ENOENT) {
        if (access(key_path, F_OK) == 0)
            kv_log(KV_LOG_WARN, "TLS: %s has no %s; replacing it with a new CA", key_path,
                   CA_PEM_NAME);
        st = create_ca(paths.ca_pem, key_path, &ca, &ca_key);
    } else {
        kv_log(KV_LOG_ERROR, "TLS: cannot stat %s: %s", paths.ca_pem, strerror(errno));
        st = KV_ERR_INTERNAL;
    }
    if (st != KV_OK)
        goto out;

    st = issue_server(paths.server_pem, ca, ca_key, hostnames, n);
    if (st != KV_OK)
        goto out;
    sync_dir(tls_dir);
    *out = paths;
out:
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return st;
}
