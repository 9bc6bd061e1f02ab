/* The local CA and the server certificate (tls.h). */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include <sodium.h>

#include "kv_buf.h"
#include "kv_file.h"
#include "kv_json.h"
#include "kv_log.h"

#define TLS_SUBDIR      "tls"
#define CA_PEM_NAME     "ca.pem"
#define CA_KEY_NAME     "ca.key"
#define SERVER_PEM_NAME "server.pem"
#define RELEASE_PEM_NAME "release.pem"

#define DIR_MODE  0700u
#define KEY_MODE  0600u /* ca.key and server.pem */
#define CERT_MODE 0644u /* ca.pem: public */

#define CA_CN         "kvmock local CA"
#define SERVER_CN     "localhost"
#define RELEASE_CN    "kvmock key release"
#define RELEASE_BITS  2048
#define EC_CURVE      "P-256"
#define BACKDATE_SECS (60L * 60)  /* notBefore is an hour ago, for clock skew */
#define CA_DAYS       3650        /* ten years */
#define SERVER_DAYS   825         /* the longest browsers and Apple accept */
#define CA_WARN_DAYS  30          /* warn when the CA has less left than this */
#define SERIAL_BYTES  16          /* 128-bit serial numbers */
#define PEM_FILE_MAX  (64 * 1024) /* larger ca.pem / ca.key files are refused */
#define HOSTNAME_MAX  253

/* Names every server certificate carries, before the configured ones. */
static const char *const builtin_names[] = {"localhost", "127.0.0.1", "::1", "*.vault.localhost",
                                            "*.managedhsm.localhost"};

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

/* The built-in names and @p hostnames, as a subjectAltName. */
static enum kv_status server_names(const char *const *hostnames, size_t n, GENERAL_NAMES **out)
{
    enum kv_status st = KV_OK;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL) {
        log_crypto("building the subjectAltName");
        return KV_ERR_CRYPTO;
    }
    for (size_t i = 0; st == KV_OK && i < sizeof(builtin_names) / sizeof(builtin_names[0]); i++)
        st = san_add(gens, builtin_names[i]);
    for (size_t i = 0; st == KV_OK && i < n; i++)
        st = san_add(gens, hostnames[i] != NULL ? hostnames[i] : "");
    if (st != KV_OK) {
        sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
        return st;
    }
    *out = gens;
    return KV_OK;
}

/* Issue a certificate of the local CA for @p key, the names @p gens and (not NULL) the
 * extended key usage @p eku, and write it with its key to @p path. */
static enum kv_status issue_leaf(const char *path, EVP_PKEY *key, const char *cn, const char *eku,
                                 X509 *ca, EVP_PKEY *ca_key, GENERAL_NAMES *gens, const char *what)
{
    X509 *cert = new_cert(key, cn, ca, SERVER_DAYS);
    enum kv_status st = KV_ERR_CRYPTO;
    if (cert == NULL || !add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") ||
        (eku != NULL && !add_ext(cert, ca, NID_ext_key_usage, eku)) ||
        !add_ext(cert, ca, NID_subject_key_identifier, "hash") ||
        !add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") ||
        X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509_sign(cert, ca_key, EVP_sha256()) <= 0)
        log_crypto(what);
    else
        st = write_pem(path, cert, key, KEY_MODE);
    X509_free(cert);
    return st;
}

/* Issue a server certificate for the names @p gens, and write server.pem. */
static enum kv_status issue_server(const char *path, X509 *ca, EVP_PKEY *ca_key,
                                   GENERAL_NAMES *gens)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", EC_CURVE);
    if (key == NULL) {
        log_crypto("generating the server key");
        return KV_ERR_CRYPTO;
    }
    enum kv_status st = issue_leaf(path, key, SERVER_CN, "serverAuth", ca, ca_key, gens,
                                   "issuing the server certificate");
    if (st == KV_OK)
        kv_log(KV_LOG_INFO, "TLS: issued a server certificate for %d names in %s",
               sk_GENERAL_NAME_num(gens), path);
    EVP_PKEY_free(key);
    return st;
}

/* The RSA key of an existing release.pem, or NULL when there is none to keep. */
static EVP_PKEY *release_key_kept(const char *path)
{
    char *pem = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0 || read_file(path, &pem, &len) != KV_OK)
        return NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL)
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (key != NULL && (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) != RELEASE_BITS)) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    if (key == NULL) {
        ERR_clear_error();
        kv_log(KV_LOG_WARN, "TLS: %s holds no usable RSA key; making a new one", path);
    }
    return key;
}

/*
 * Issue the key release certificate, which signs released keys as Key Vault's own
 * certificate does: for the server's names, by the local CA, with the RSA key of the
 * release.pem already there, or a new one (RSA key generation takes tens of milliseconds:
 * it is made once, at the first release, not at start).
 */
static enum kv_status issue_release(const char *path, X509 *ca, EVP_PKEY *ca_key,
                                    GENERAL_NAMES *gens)
{
    EVP_PKEY *key = release_key_kept(path);
    if (key == NULL)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RELEASE_BITS);
    if (key == NULL) {
        log_crypto("generating the key release key");
        return KV_ERR_CRYPTO;
    }
    enum kv_status st = issue_leaf(path, key, RELEASE_CN, NULL, ca, ca_key, gens,
                                   "issuing the key release certificate");
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
    GENERAL_NAMES *gens = NULL;
    struct srv_tls_paths paths;

    if ((st = join(tls_dir, sizeof(tls_dir), data_dir, TLS_SUBDIR)) != KV_OK ||
        (st = join(paths.tls_dir, sizeof(paths.tls_dir), data_dir, TLS_SUBDIR)) != KV_OK ||
        (st = join(paths.ca_pem, sizeof(paths.ca_pem), tls_dir, CA_PEM_NAME)) != KV_OK ||
        (st = join(key_path, sizeof(key_path), tls_dir, CA_KEY_NAME)) != KV_OK ||
        (st = join(paths.ca_key, sizeof(paths.ca_key), tls_dir, CA_KEY_NAME)) != KV_OK ||
        (st = join(paths.server_pem, sizeof(paths.server_pem), tls_dir, SERVER_PEM_NAME)) !=
            KV_OK ||
        (st = join(paths.release_pem, sizeof(paths.release_pem), tls_dir, RELEASE_PEM_NAME)) !=
            KV_OK)
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

    st = server_names(hostnames, n, &gens);
    if (st == KV_OK)
        st = issue_server(paths.server_pem, ca, ca_key, gens);
    /* the release certificate is renewed for this start's names when its key exists */
    if (st == KV_OK && access(paths.release_pem, F_OK) == 0)
        st = issue_release(paths.release_pem, ca, ca_key, gens);
    if (st != KV_OK)
        goto out;
    sync_dir(tls_dir);
    *out = paths;
out:
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return st;
}

/* ---- the key release signer -------------------------------------------------------------- */

struct srv_signer {
    pthread_mutex_t mu;
    int ready; /* key and header are set (under mu) */
    EVP_PKEY *key;
    char *header; /* the JWS header, base64url */
    struct srv_tls_paths paths;
    char **names; /* the server's extra names, for a certificate made at the first release */
    size_t n_names;
};

void srv_signer_free(struct srv_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key);
    free(s->header);
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A certificate's DER in standard base64, as x5c carries it. */
static char *cert_b64(X509 *cert)
{
    unsigned char *der = NULL;
    int len = i2d_X509(cert, &der);
    if (len <= 0)
        return NULL;
    size_t cap = sodium_base64_encoded_len((size_t)len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (out != NULL)
        sodium_bin2base64(out, cap, der, (size_t)len, sodium_base64_VARIANT_ORIGINAL);
    OPENSSL_free(der);
    return out;
}

/* Key Vault's header: RS256, the certificate's SHA-1 thumbprint as kid (hex) and x5t, its
 * SHA-256 thumbprint as x5t#S256, and the chain up to the CA in x5c. */
static enum kv_status signer_header(X509 *cert, X509 *ca, char **out)
{
    unsigned char sha1[20], sha256[32];
    unsigned len1 = 0, len256 = 0;
    if (X509_digest(cert, EVP_sha1(), sha1, &len1) != 1 ||
        X509_digest(cert, EVP_sha256(), sha256, &len256) != 1 || len1 != 20 || len256 != 32)
        return KV_ERR_CRYPTO;
    char kid[41];
    for (size_t i = 0; i < sizeof(sha1); i++)
        snprintf(kid + 2 * i, 3, "%02X", sha1[i]);
    char *leaf = cert_b64(cert), *root = cert_b64(ca), *text = NULL;
    size_t text_len = 0;
    if (leaf != NULL && root != NULL) {
        struct kv_json j;
        kv_json_init(&j);
        kv_json_open(&j, NULL, '{');
        kv_json_str(&j, "alg", "RS256");
        kv_json_str(&j, "kid", kid);
        kv_json_b64url(&j, "x5t", sha1, sizeof(sha1));
        kv_json_str(&j, "typ", "JWT");
        kv_json_b64url(&j, "x5t#S256", sha256, sizeof(sha256));
        kv_json_open(&j, "x5c", '[');
        kv_json_str(&j, NULL, leaf);
        kv_json_str(&j, NULL, root);
        kv_json_close(&j, ']');
        kv_json_close(&j, '}');
        text = kv_json_take(&j, &text_len);
    }
    enum kv_status st = text != NULL ? kv_b64url_encode(text, text_len, out) : KV_ERR_NOMEM;
    free(leaf);
    free(root);
    free(text);
    return st;
}

static X509 *first_cert(const char *path)
{
    char *pem = NULL;
    size_t len = 0;
    if (read_file(path, &pem, &len) != KV_OK)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    return cert;
}

/* Read release.pem's certificate and key into @p s. */
static enum kv_status signer_load(struct srv_signer *s)
{
    enum kv_status st = KV_ERR_CRYPTO;
    X509 *cert = first_cert(s->paths.release_pem), *ca = first_cert(s->paths.ca_pem);
    if (cert == NULL || ca == NULL) {
        log_crypto("reading the key release certificate");
        goto out;
    }
    s->key = release_key_kept(s->paths.release_pem);
    if (s->key == NULL || EVP_PKEY_eq(X509_get0_pubkey(cert), s->key) != 1)
        goto out;
    st = signer_header(cert, ca, &s->header);
    if (st == KV_OK)
        s->ready = 1;
out:
    if (!s->ready) {
        EVP_PKEY_free(s->key);
        s->key = NULL;
    }
    ERR_clear_error();
    X509_free(cert);
    X509_free(ca);
    return st;
}

/* The first release of a data folder without release.pem: make its key and certificate. */
static enum kv_status signer_make(struct srv_signer *s)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    GENERAL_NAMES *gens = NULL;
    enum kv_status st = load_ca(s->paths.tls_dir, s->paths.ca_pem, s->paths.ca_key, &ca, &ca_key);
    if (st == KV_OK)
        st = server_names((const char *const *)s->names, s->n_names, &gens);
    if (st == KV_OK)
        st = issue_release(s->paths.release_pem, ca, ca_key, gens);
    if (st == KV_OK) {
        sync_dir(s->paths.tls_dir);
        kv_log(KV_LOG_INFO, "TLS: made the key release certificate in %s", s->paths.release_pem);
        st = signer_load(s);
    }
    sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return st;
}

enum kv_status srv_signer_open(const struct srv_tls_paths *paths, const char *const *hostnames,
                               size_t n, struct srv_signer **out)
{
    struct srv_signer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return KV_ERR_NOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return KV_ERR_INTERNAL;
    }
    s->paths = *paths;
    enum kv_status st = KV_OK;
    if (n > 0 && (s->names = calloc(n, sizeof(char *))) == NULL)
        st = KV_ERR_NOMEM;
    for (size_t i = 0; st == KV_OK && i < n; i++) {
        s->names[i] = strdup(hostnames[i] != NULL ? hostnames[i] : "");
        if (s->names[i] == NULL)
            st = KV_ERR_NOMEM;
        else
            s->n_names++;
    }
    if (st == KV_OK && access(paths->release_pem, F_OK) == 0)
        st = signer_load(s);
    if (st != KV_OK) {
        srv_signer_free(s);
        return st;
    }
    *out = s;
    return KV_OK;
}

enum kv_status srv_signer_sign(struct srv_signer *s, const char *payload, size_t len, char **out)
{
    char *body = NULL, *sig_text = NULL, *jws = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_MD_CTX *md = NULL;
    pthread_mutex_lock(&s->mu);
    enum kv_status st = s->ready ? KV_OK : signer_make(s);
    pthread_mutex_unlock(&s->mu);
    if (st == KV_OK)
        st = kv_b64url_encode(payload, len, &body);
    if (st != KV_OK)
        return st;
    size_t hlen = strlen(s->header), blen = strlen(body);
    char *input = malloc(hlen + 1 + blen + 1);
    st = KV_ERR_NOMEM;
    if (input == NULL)
        goto out;
    memcpy(input, s->header, hlen);
    input[hlen] = '.';
    memcpy(input + hlen + 1, body, blen + 1);
    st = KV_ERR_CRYPTO;
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->key) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, (unsigned char *)input, hlen + 1 + blen) != 1 ||
        (sig = malloc(sig_len)) == NULL ||
        EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, hlen + 1 + blen) != 1)
        goto out;
    st = kv_b64url_encode(sig, sig_len, &sig_text);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_NOMEM;
    size_t slen = strlen(sig_text);
    jws = malloc(hlen + 1 + blen + 1 + slen + 1);
    if (jws == NULL)
        goto out;
    memcpy(jws, input, hlen + 1 + blen);
    jws[hlen + 1 + blen] = '.';
    memcpy(jws + hlen + 1 + blen + 1, sig_text, slen + 1);
    *out = jws;
    st = KV_OK;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    free(sig);
    free(sig_text);
    free(input);
    free(body);
    return st;
}
