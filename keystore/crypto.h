/**
 * @file crypto.h
 * @brief Key material and key operations over OpenSSL 3 (keystore-internal).
 *
 * A `struct ks_material` is a parsed private key: an EVP_PKEY for RSA; the
 * private scalar and public point for EC, with an EVP_PKEY when it was loaded
 * or imported (a new key gets one when an operation needs it); raw key bytes
 * for oct. Its key is immutable once built, so one material may be used by
 * several threads at once; the OpenSSL contexts an operation sets up for RSA
 * and AES key wrap are kept, under a lock, for the next operation.
 *
 * Nothing here re-implements a primitive: RSA, ECDSA, AES-KW, AES-GCM,
 * AES-CBC and HMAC all go through OpenSSL EVP; random bytes and wiping come
 * from libsodium. Every buffer that held private material is wiped.
 */
#ifndef KS_CRYPTO_H
#define KS_CRYPTO_H

#include "ks.h"

struct ks_material;

/**
 * @brief Generate a new key.
 * @param[in] kty RSA, EC or OCT.
 * @param[in] size_bits RSA 2048/3072/4096; OCT 128/192/256; ignored for EC.
 * @param[in] exponent RSA public exponent (3 or 65537); ignored otherwise.
 * @param[in] crv EC curve; ignored otherwise.
 * @param[out] out the key; release with ks_material_free().
 * @return KV_OK, KV_ERR_BAD_KEY_SIZE, KV_ERR_BAD_EXPONENT, KV_ERR_BAD_CURVE, KV_ERR_CRYPTO,
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_material_generate(enum ks_kty kty, int size_bits, unsigned long exponent,
                                    enum ks_crv crv, struct ks_material **out) KV_MUST_CHECK;

/**
 * @brief Build key material from a private JWK, checking that it is complete
 * and consistent (RSA: n = p*q and d matches; EC: the point is on the curve and
 * matches d; oct: 16, 24 or 32 bytes).
 * RSA needs n, e, d, p, q, dp, dq, qi; EC needs crv, x, y, d; oct needs k.
 * @return KV_OK, KV_ERR_BAD_JWK, KV_ERR_BAD_KEY_SIZE, KV_ERR_BAD_CURVE, KV_ERR_NOMEM.
 */
enum kv_status ks_material_from_jwk(const struct ks_jwk *jwk,
                                    struct ks_material **out) KV_MUST_CHECK;

/**
 * @brief Serialise the private material for sealing: PKCS#8 DER for RSA; for EC
 * a tag byte (0x01), the curve's code, the private scalar and the uncompressed
 * public point (EC keys stored as PKCS#8 DER still load); the raw key bytes for oct.
 * @param[out] out owned by the caller, who must release it with kv_buf_wipe().
 * @return KV_OK, KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_material_serialize(const struct ks_material *m,
                                     struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief The inverse of ks_material_serialize().
 * @return KV_OK, KV_ERR_CRYPTO (bytes do not parse), KV_ERR_NOMEM.
 */
enum kv_status ks_material_deserialize(enum ks_kty kty, const unsigned char *bytes, size_t len,
                                       struct ks_material **out) KV_MUST_CHECK;

/** @brief The key type of a material. */
enum ks_kty ks_material_kty(const struct ks_material *m);

/**
 * @brief Fill @p out with the public part: n and e for RSA (no leading zero
 * bytes), crv, x and y for EC (each padded to the field size: 32, 32, 48, 66),
 * and size_bits for every type (oct: nothing else).
 * @param[out] out set only on success; release with ks_pub_clear().
 * @return KV_OK, KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_material_public(const struct ks_material *m, struct ks_pub *out) KV_MUST_CHECK;

/**
 * @brief A self-signed X.509 certificate of RSA key @p m (SHA-256), subject and issuer
 * CN=@p cn, valid from now for @p days days, with a random serial number.
 * @param[out] der the certificate, DER; release with kv_buf_free().
 * @return KV_OK, KV_ERR_BAD_ALG (not an RSA key), KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_material_certificate(const struct ks_material *m, const char *cn, int days,
                                       struct kv_buf *der) KV_MUST_CHECK;

/** @brief Free a material, wiping oct key bytes. NULL is a no-op. */
void ks_material_free(struct ks_material *m);

/**
 * @brief Run one key operation.
 *
 * | op | RSA | EC | oct |
 * |---|---|---|---|
 * | ENCRYPT/DECRYPT | RSA-OAEP (SHA-1), RSA-OAEP-256, RSA1_5 | - | AxxxGCM, AxxxCBC, AxxxCBCPAD |
 * | WRAP/UNWRAP | RSA-OAEP, RSA-OAEP-256, RSA1_5 | - | AxxxKW, CKM_AES_KEY_WRAP (RFC 3394), CKM_AES_KEY_WRAP_PAD (RFC 5649) |
 * | SIGN/VERIFY | RS256/384/512, PS256/384/512 (salt = hash length) | ES256 (P-256), ES256K (P-256K), ES384 (P-384), ES512 (P-521) | HS256/384/512 |
 *
 * - SIGN takes the precomputed digest in params->value; its length must equal the
 *   hash length. ECDSA signatures are raw R||S, each half padded to the field size.
 * - VERIFY takes the digest in params->digest and the signature in params->value and
 *   sets out->verified; a wrong signature is KV_OK with verified = 0.
 * - AES-GCM encrypt makes a 12-byte IV and returns it with the 16-byte tag; decrypt
 *   needs iv and tag. AES-CBC takes a 16-byte IV or makes one and returns it.
 * - The AES algorithm's key length must equal the oct key's length.
 * Fills out->value (and iv, tag, verified); out->version is left alone.
 * @return KV_OK; KV_ERR_BAD_ALG (algorithm does not apply to this key type, curve or size);
 *   KV_ERR_BAD_INPUT_LENGTH (digest size, RSA ciphertext != modulus length, IV/tag size,
 *   plaintext too long for RSA); KV_ERR_CRYPTO_FAILED (decrypt/unwrap/tag failure);
 *   KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_material_op(const struct ks_material *m, unsigned op,
                              const struct ks_op_params *params,
                              struct ks_op_result *out) KV_MUST_CHECK;

/**
 * @brief Open a key transfer blob's ciphertext (bring your own key) with the key
 * exchange key @p kek: RSA-OAEP as @p enc says gives an AES key, which unwraps (RFC 5649)
 * the key: PKCS#8 for RSA and EC, the raw bytes for oct. Its parts go into @p out as the
 * JWK of @p out->kty (and @p out->crv when set), for ks_material_from_jwk() to check and
 * build; release them with ks_jwk_wipe().
 * @return KV_OK, KV_ERR_BYOK_KEK (@p kek is not RSA), KV_ERR_BYOK_BLOB (it does not open,
 *   or holds another type or curve), KV_ERR_BAD_KEY_SIZE (oct),
 *   KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_material_byok_open(const struct ks_material *kek, enum ks_release_enc enc,
                                     const struct kv_buf *ct, struct ks_jwk *out) KV_MUST_CHECK;

/**
 * @brief Secure key release: the private key of @p m for the holder of an RSA key (@p n,
 * @p e, 2048-4096 bits), as Key Vault releases it: a fresh AES-256 key encrypted with
 * RSA-OAEP (SHA-1, SHA-256 or SHA-384 as @p enc says; MGF1 the same, no label), followed
 * by the key wrapped under it with AES key wrap with padding (RFC 5649). The key is its
 * PKCS#8 DER for RSA and EC, its bytes for oct.
 * @param[out] out release with kv_buf_free().
 * @return KV_OK, KV_ERR_BAD_PARAM (the target is not such an RSA key), KV_ERR_CRYPTO,
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_material_release(const struct ks_material *m, enum ks_release_enc enc,
                                   const struct kv_buf *n, const struct kv_buf *e,
                                   struct kv_buf *out) KV_MUST_CHECK;

#endif
