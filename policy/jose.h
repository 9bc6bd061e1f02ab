/**
 * @file jose.h
 * @brief JOSE pieces the policy layer checks tokens with (internal to policy/): public keys
 * from a JWKS, compact JWS parsing, and RS/PS/ES signature verification.
 *
 * Used by assertion.c (client assertions: federated issuers' keys) and release.c
 * (attestation tokens: the attestation authorities' keys). Only public keys are held here;
 * nothing signs.
 */
#ifndef POL_JOSE_H
#define POL_JOSE_H

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_buf.h"
#include "kv_status.h"

#define JOSE_KID_MAX 128 /**< bytes of a JWK's kid, with its NUL */

/** A signing key of a JWKS. */
struct jose_key {
    char kid[JOSE_KID_MAX]; /**< "" when the JWK names none */
    EVP_PKEY *key;          /**< owned */
};

/** How jose_jwks_read() reads keys. */
enum jose_jwks_flags {
    /** an RSA JWK without `n` may carry its key as a certificate: the public key of
     * `x5c[0]` (standard base64 DER), as Azure Attestation publishes its keys */
    JOSE_JWKS_X5C = 1,
};

/**
 * @brief Read the signing keys of a JWKS document (`{"keys": [...]}`): RSA keys by `n`/`e`
 * (2048 to 16384 bits), EC keys on P-256, P-384 and P-521 by `crv`/`x`/`y`. A key whose
 * `use` is not "sig" is skipped (it encrypts).
 * @param[out] keys room for @p max keys; on KV_OK keys[0..*n) are set and owned by the
 *   caller (jose_keys_free()), on an error nothing is left in them.
 * @param[out] n how many keys were read, at least one on KV_OK.
 * @param[out] err a message on KV_ERR_BAD_PARAM (the document, the nth key, too many keys,
 *   none that signs).
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status jose_jwks_read(const char *jwks, size_t len, unsigned flags, struct jose_key *keys,
                              size_t max, size_t *n, char *err, size_t cap) KV_MUST_CHECK;

/** @brief Free the first @p n keys of @p keys. */
void jose_keys_free(struct jose_key *keys, size_t n);

/**
 * @brief An RSA public key from its big-endian modulus and exponent, which OpenSSL's public
 * key check accepts.
 * @param[out] out set on KV_OK; EVP_PKEY_free() it.
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status jose_rsa_public(const struct kv_buf *n, const struct kv_buf *e,
                               EVP_PKEY **out) KV_MUST_CHECK;

/**
 * @brief Parse JSON text as cJSON does (cJSON_ParseWithLength), telling text that is not
 * JSON from an allocation failure.
 * @param[in] strict 1: the text must be JSON as RFC 8259 has it (UTF-8, nothing after the
 *   value, no "\u0000"), checked before it is parsed; 0: what cJSON accepts.
 * @param[out] out the tree, set on KV_OK; cJSON_Delete() it.
 * @return KV_OK, KV_ERR_BAD_PARAM (not JSON), KV_ERR_NOMEM.
 */
enum kv_status jose_json_parse(const char *text, size_t len, int strict, cJSON **out) KV_MUST_CHECK;

/** A compact JWS, decoded. */
struct jose_jws {
    cJSON *header, *claims; /**< JSON objects, owned */
    struct kv_buf sig;
    const char *signed_part; /**< header.claims, as sent (points into the text) */
    size_t signed_len;
};

/** What jose_jws_parse() found. */
enum jose_parse {
    JOSE_PARSED = 0,
    JOSE_TOO_LONG,    /**< longer than the caller's limit */
    JOSE_NOT_COMPACT, /**< not three parts separated by dots */
    JOSE_NOT_JSON,    /**< the header or claims are not base64url JSON objects */
    JOSE_BAD_SIG,     /**< the signature is not base64url */
    JOSE_NOMEM,
};

/**
 * @brief Split a compact JWS and decode its parts.
 * @param[in] max the longest text taken, in bytes.
 * @param[out] j filled as far as it got; jose_jws_clear() it whatever the result.
 */
enum jose_parse jose_jws_parse(const char *text, size_t max, struct jose_jws *j);

/** @brief Free what jose_jws_parse() decoded. */
void jose_jws_clear(struct jose_jws *j);

/** @brief The string member @p name of object @p o, or NULL. */
const char *jose_str(const cJSON *o, const char *name);

/** @brief A NumericDate claim: 1 and its value, 0 when absent, -1 when not a number. */
int jose_date(const cJSON *o, const char *name, int64_t *out);

/** @brief jose_date(), but a string of 1 to 15 decimal digits is taken too: MSAL.NET writes
 *  its client assertions' nbf and exp so, and Entra takes them (client assertions only). */
int jose_date_or_digits(const cJSON *o, const char *name, int64_t *out);

/** JWS signature algorithms. */
enum jose_sig { JOSE_RS, JOSE_PS, JOSE_ES };

struct jose_alg {
    const char *name; /**< "RS256" */
    enum jose_sig kind;
    int bits; /**< of the digest */
};

/** @brief The algorithm named @p name (RS, PS, ES with 256, 384, 512), or NULL. */
const struct jose_alg *jose_alg(const char *name);

/**
 * @brief Whether @p key verifies @p j's signature under @p alg (ES256 on P-256, ES384 on
 * P-384, ES512 on P-521, the signature as JOSE's r||s). A signature refused is checked a
 * second time, as OpenSSL does not always say that it ran out of memory.
 * @return 1 verified, 0 not, -1 out of memory.
 */
int jose_verify(const struct jose_jws *j, const struct jose_alg *alg, EVP_PKEY *key);

/** What jose_verify_keys() found. */
enum jose_verdict {
    JOSE_VERIFIED = 0,
    JOSE_NO_KEY, /**< no key has the header's kid */
    JOSE_BAD_SIGNATURE,
    JOSE_VERIFY_NOMEM,
};

/**
 * @brief Verify @p j with the keys of a JWKS: with @p kid (the header's, may be NULL) only
 * the keys with that kid or none, else every key.
 */
enum jose_verdict jose_verify_keys(const struct jose_jws *j, const struct jose_alg *alg,
                                   const struct jose_key *keys, size_t n, const char *kid);

/** @brief Write a message into @p err (as snprintf) and return KV_ERR_BAD_PARAM: how
 * jose.c and its users refuse what they were given. */
enum kv_status jose_bad(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
