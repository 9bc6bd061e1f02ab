/**
 * @file tls.h
 * @brief The local certificate authority and the server certificate.
 *
 * kvmock serves HTTPS with a certificate signed by its own CA, which lives in
 * DATA/tls (../shared/keyvault/interface.md, "Files in the data folder"):
 *
 * - `ca.pem`: the CA certificate clients trust (REQUESTS_CA_BUNDLE,
 *   NODE_EXTRA_CA_CERTS). Created at first start and kept across starts.
 * - `ca.key`: the CA's private key, mode 0600.
 * - `server.pem`: the server certificate followed by its private key,
 *   mode 0600, re-issued with a fresh key at every start. It is the file
 *   civetweb's `ssl_certificate` option names.
 * - `release.pem`: the key release certificate followed by its RSA-2048 private
 *   key, mode 0600. It signs released keys (secure key release), as Key Vault's
 *   own certificate does. Its key is made at the data folder's first release (an
 *   RSA key takes tens of milliseconds, which no start should wait for) and kept;
 *   the certificate is re-issued at every start for the server's names.
 *
 * Keys are EC P-256; certificates are X.509 v3 signed with ECDSA-SHA256 and
 * pass OpenSSL's X509_V_FLAG_X509_STRICT checks (Python 3.13's default).
 */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <stddef.h>

#include "kv_status.h"

/** Paths of the files srv_tls_prepare() leaves in DATA/tls. */
struct srv_tls_paths {
    char tls_dir[4096];    /**< DATA/tls */
    char ca_key[4096];     /**< DATA/tls/ca.key */
    char ca_pem[4096];     /**< DATA/tls/ca.pem: the CA certificate clients trust */
    char server_pem[4096]; /**< DATA/tls/server.pem: server cert + its private key (mode 0600),
                                for civetweb's ssl_certificate */
    char release_pem[4096]; /**< DATA/tls/release.pem: the key release certificate + its key */
};

/**
 * @brief Make sure DATA/tls holds a CA and a fresh server certificate.
 *
 * Creates @p data_dir (when missing) and DATA/tls with mode 0700; a DATA/tls
 * that group or others can read is set back to 0700. At first start (no
 * ca.pem) it creates a CA: subject CN "kvmock local CA", critical
 * basicConstraints CA:TRUE, critical keyUsage keyCertSign+cRLSign, subject
 * and authority key identifiers, valid from an hour ago for 3650 days. Later
 * starts keep that CA. A ca.pem without ca.key, a ca.key that does not match
 * ca.pem, a ca.key readable by group or others, or an expired CA is an
 * error, never a silent regeneration: clients trust the existing ca.pem.
 *
 * At every start it issues a server certificate with a new key: subject
 * CN "localhost", critical basicConstraints CA:FALSE, critical keyUsage
 * digitalSignature, extendedKeyUsage serverAuth, subject and authority key
 * identifiers, valid from an hour ago for 825 days (never past the CA's own
 * end). Its subjectAltName lists DNS localhost, IP 127.0.0.1, IP ::1,
 * DNS *.vault.localhost, then each of @p hostnames: an IP entry when the name
 * parses as an IPv4 or IPv6 address, a DNS entry otherwise. Duplicates
 * (DNS compared case-insensitively, IPs by value) are listed once; empty
 * names are skipped.
 *
 * Every file is written atomically (temporary file, fsync, rename); private
 * keys are created with mode 0600. No key material is logged.
 *
 * @param[in] data_dir the data folder.
 * @param[in] hostnames extra names for the server certificate; may be NULL when @p n is 0.
 *   Each must be at most 253 characters of [A-Za-z0-9.*_:-].
 * @param[in] n how many @p hostnames.
 * @param[out] out the paths of ca.pem and server.pem; set only on success.
 * @return KV_OK;
 *   KV_ERR_INTERNAL when a path is too long, a file or folder cannot be
 *   created, read or written, the existing CA is unusable (see above) or a
 *   host name is invalid;
 *   KV_ERR_CRYPTO when an OpenSSL call fails.
 *   Each failure logs an error line naming the file and the cause.
 */
enum kv_status srv_tls_prepare(const char *data_dir, const char *const *hostnames, size_t n,
                               struct srv_tls_paths *out) KV_MUST_CHECK;

/** Signs what kvmock releases: compact JWS, RS256, with the release certificate's chain. */
struct srv_signer;

/**
 * @brief Load the key release certificate and key that srv_tls_prepare() renewed; when
 * the data folder has none yet, the first srv_signer_sign() makes them, for @p hostnames
 * (copied) as srv_tls_prepare() would.
 * @param[out] out release with srv_signer_free().
 * @return KV_OK, KV_ERR_CRYPTO (logged), KV_ERR_INTERNAL, KV_ERR_NOMEM.
 */
enum kv_status srv_signer_open(const struct srv_tls_paths *paths, const char *const *hostnames,
                               size_t n, struct srv_signer **out) KV_MUST_CHECK;

/** @brief Free a signer. NULL is a no-op. */
void srv_signer_free(struct srv_signer *s);

/**
 * @brief Sign @p payload as a compact JWS: Key Vault's header (alg RS256, kid and x5t the
 * certificate's SHA-1 thumbprint, typ JWT, x5t#S256, x5c: the certificate and the CA).
 * @param[out] out the JWS, malloc()ed; the caller frees it.
 * @return KV_OK, KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status srv_signer_sign(struct srv_signer *s, const char *payload, size_t len,
                               char **out) KV_MUST_CHECK;

#endif
