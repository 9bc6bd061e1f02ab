/* A certificate, an issuer's JWKS and two client assertions made once with Python's
 * cryptography, for the unit tests that need them ready-made: the certificate's RSA key signed
 * the application's own RS256 assertion (x5t, iss = sub = TESTASSERT_CLIENT, aud =
 * TESTASSERT_ENDPOINT), the JWKS's EC key (kid "e1") the federated ES256 one (iss
 * TESTASSERT_ISSUER, sub "ci", aud api://AzureADTokenExchange). Both are valid at
 * TESTASSERT_NOW, which the tests pass as `now`, so they never expire. */
#ifndef TESTASSERT_H
#define TESTASSERT_H

#include <string.h>

#include "pol.h"

#define TESTASSERT_CLIENT   "0c000000-0000-4000-8000-000000000002"
#define TESTASSERT_ENDPOINT "https://localhost:8443/t/oauth2/v2.0/token"
#define TESTASSERT_ISSUER   "https://issuer.example"
#define TESTASSERT_NOW      1800000100

static const char testassert_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICmzCCAYOgAwIBAgIBCTANBgkqhkiG9w0BAQsFADARMQ8wDQYDVQQDDAZmYXVs\n"
    "dHMwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjARMQ8wDQYDVQQDDAZm\n"
    "YXVsdHMwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDifK3rOFuMxph7\n"
    "E2+t2KjlU95FqAHj8wcuDKtvciev7VrZAXoPxPORkW6x2TiPKBkSKu/5EKBph52u\n"
    "SLHFlCNzqLxmYD7uQTjn+0athytk53jCO+XUqda6IxR7Mibkd0mdXbUpHQG3DTHv\n"
    "PerCFHCf3fZu76pD7zQYamy5KcYtLNKHK/C6WKAjDN7ASJLTetaI4TUwZ9zIdXqc\n"
    "0HAJpdNgv8npSzKdeusJpL1DK3Ji48aV9MK/4SmTxISff2C1VC0QySgz88lzPP6P\n"
    "Tm/NcdsgnRLkzrafUyE2dBsHa89bPYnWlt4gHZDh7W0aOHlNi0IWvWOduURe/352\n"
    "ESbG+2BPAgMBAAEwDQYJKoZIhvcNAQELBQADggEBAIDMRNQHHjgG3Pb4X4Nz0GZW\n"
    "Py/2V95HT7kkA3gSDSqnyKcnBkS3j/Z4vEx3UrpbpPseFoTFR0ZiCVmtE/IZ50zp\n"
    "b9LgRJB8I10bejQnh1RWn2FTy8SSGqPFRZc6nY/dr9HBRV4myr6+MnzTAZSRMxhD\n"
    "Ef/HXMiiNn9/1pGnz3G1UosYZKt7EhGOzxhkLW1LLiUtkG1yAUrjzOrHBjH2cBIq\n"
    "4ip8XyeadRkpoDPX+n9sjiFWtYCZfdj6GAkOOU4pqf6g0F6PfquPfX134X9w3+d8\n"
    "t3Sl9eMKcgABfGCdgJtcO5LxwrNobW6NNTxsnLbeMXCwG3zAdCAM4KTZN6JCJnc=\n"
    "-----END CERTIFICATE-----\n";
static const char testassert_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e1\",\"use\":\"sig\",\"x\":"
    "\"ZLyc6f7g1tByPKpim-dZej5tDrlh7jnlY4W1xn1cOsw\",\"y\":\"lbvC9GM_"
    "pP64xIgyUDW2L9X7TBj17Dw042q8CIuKKck\"}]}";
static const char testassert_own_assertion[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsIng1dCI6Ikw2WlBOUHh0Uk5LMU9vNDFHQmpPakVrS2lVWSJ9.eyJhd"
    "WQiOiJodHRwczovL2xvY2FsaG9zdDo4NDQzL3Qvb2F1dGgyL3YyLjAvdG9rZW4iLCJpc3MiOiIwYzAwMDAwMC0wMDA"
    "wLTQwMDAtODAwMC0wMDAwMDAwMDAwMDIiLCJzdWIiOiIwYzAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwM"
    "DIiLCJqdGkiOiIxIiwibmJmIjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDA2MDB9.L0vJSR8KFbP3STBTeKxmq4hSmR"
    "IGMkh_4iWmW1zag6je-jLWNegrtHwjjwMDccJTQBB-5hrTdzFIXxxyvIPX4JlElE3-1f6o9ZPzaUCMJs63z4ayIdU6"
    "VPG8fYMeGUhaRenU1Im3F0pzpniEFcQgp7Q3JTi0-2hC8ankovtvAse6WMpPwVP6JBa8aC0VFaFeRmVx-Ev2lZ4bo2"
    "pD6_KxWQfBfV0QkG9Ul0hLAdr7C1ik54IzdFBFFqWZBsvd9oqKlJaz5xnV9f2xu9yxKMwb2MmJbyjzf7p9_6pMnlZ-"
    "OgZhZkwXwJm5o9htPEgDU0d22tEeijw_qvzdjw0ju-FPbA";
static const char testassert_federated_assertion[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImUxIn0.eyJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSIsImlzcy"
    "I6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJzdWIiOiJjaSIsImV4cCI6MTgwMDAwMDYwMH0.GFYGo63DpzXMhJCm"
    "YJKgas5DGdVvRk1Vx5Pr05yNHov3xecHFYW8LRy4k1zDfvg1TtQO5207OPNaIg1WpeJcZA";

/* Register the certificate and the issuer's JWKS (issuer TESTASSERT_ISSUER, subject "ci")
 * with @p creds, as a configuration file would. */
static inline enum kv_status testassert_register(struct pol_creds **creds)
{
    char err[256];
    size_t added = 0;
    enum kv_status st = pol_creds_add_certificates(
        creds, testassert_cert_pem, strlen(testassert_cert_pem), &added, err, sizeof(err));
    if (st == KV_OK)
        st = pol_creds_add_federated(creds, TESTASSERT_ISSUER, "ci", POL_FEDERATED_AUDIENCE,
                                     testassert_jwks, strlen(testassert_jwks), err, sizeof(err));
    return st;
}

#endif
