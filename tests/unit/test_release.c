/* Secure key release (policy/release.c): trusted attestation authorities, release policies
 * in Key Vault's grammar and their normal form, and every answer pol_release_check() gives,
 * on attestation tokens signed here with OpenSSL (RS256, PS256, ES256, and a key published
 * only as an x5c certificate). */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kv_buf.h"
#include "pol.h"
#include "testjws.h"

#define NOW       1800000000
#define EXP       (NOW + 600)
#define RSA_AUTH  "https://rsa.attest.example/" /* trusted with its trailing slash */
#define EC_AUTH   "https://ec.attest.example"   /* trusted without one */
#define X5C_AUTH  "https://x5c.attest.example"
#define MALFORMED "AKV.SKR.1013: Malformed Key Release Policy - "

static char dir[] = "/tmp/kvmock-release-XXXXXX";
static EVP_PKEY *ra, *ra2, *ea, *xa, *rt, *rt4096, *rt2047, *ec_rt;
static char rt_jwk[2048];

/* ---- text helpers ------------------------------------------------------------------------ */

/* JSON written with ' for " (read back into one of a ring of buffers: a text used after
 * many more calls is kept, strdup()ed). */
static const char *J(const char *s)
{
    static char ring[64][16384];
    static unsigned next;
    char *out = ring[next++ % 64];
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < sizeof(ring[0]); i++)
        out[i] = s[i] == '\'' ? '"' : s[i];
    out[i] = '\0';
    return out;
}

/* printf into one of a ring of buffers, then J. */
static const char *F(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *F(const char *fmt, ...)
{
    static char ring[64][16384];
    static unsigned next;
    char *out = ring[next++ % 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, sizeof(ring[0]), fmt, ap);
    va_end(ap);
    return J(out);
}

/* A token: header {alg, kid (NULL: none), typ}, the claims as given. */
static char *token(EVP_PKEY *key, const char *alg, const char *kid, const char *claims)
{
    char header[256];
    if (kid != NULL)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg,
                 kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return testjws_sign(header, claims, key, alg);
}

/* An RSA key's n (with @p zero_pad leading zero bytes) and e, base64url. */
static void rsa_ne(EVP_PKEY *key, int zero_pad, char **n64, char **e64)
{
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(key, "n", &n);
    EVP_PKEY_get_bn_param(key, "e", &e);
    unsigned char nb[1024] = {0}, eb[8];
    int nl = BN_bn2bin(n, nb + zero_pad), el = BN_bn2bin(e, eb);
    *n64 = testjws_b64(nb, (size_t)nl + (size_t)zero_pad);
    *e64 = testjws_b64(eb, (size_t)el);
    BN_free(n);
    BN_free(e);
}

/* An RSA JWK: {"kty":"RSA",MEMBERS"n":..,"e":..} (MEMBERS end with a comma). */
static char *rsa_jwk(EVP_PKEY *key, const char *members)
{
    char *n64, *e64, *out = malloc(2048);
    rsa_ne(key, 0, &n64, &e64);
    snprintf(out, 2048, "{\"kty\":\"RSA\",%s\"n\":\"%s\",\"e\":\"%s\"}", members, n64, e64);
    free(n64);
    free(e64);
    return out;
}

static char *ec_jwk(EVP_PKEY *key, const char *members)
{
    unsigned char pt[65];
    size_t len = 0;
    char *out = malloc(1024);
    EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", pt, sizeof(pt), &len);
    char *x = testjws_b64(pt + 1, 32), *y = testjws_b64(pt + 33, 32);
    snprintf(out, 1024, "{\"kty\":\"EC\",\"crv\":\"P-256\",%s\"x\":\"%s\",\"y\":\"%s\"}", members,
             x, y);
    free(x);
    free(y);
    return out;
}

/* A self-signed certificate of @p key as standard base64 DER (x5c's form). */
static char *x5c_of(EVP_PKEY *key)
{
    X509 *x = testjws_self_signed(key, "maa", NOW - 86400, NOW + 86400);
    unsigned char *der = NULL;
    int len = x != NULL ? i2d_X509(x, &der) : -1;
    if (len <= 0)
        abort();
    char *out = malloc((size_t)len * 2 + 4);
    EVP_EncodeBlock((unsigned char *)out, der, len);
    OPENSSL_free(der);
    X509_free(x);
    return out;
}

/* ---- trusted authorities ----------------------------------------------------------------- */

static void trust_refused(struct pol_ctx *ctx, const char *authority, const char *jwks,
                          const char *want)
{
    char err[512] = "";
    enum kv_status st =
        pol_attestation_trust(ctx, authority, jwks, jwks ? strlen(jwks) : 0, err, sizeof(err));
    if (st != KV_ERR_BAD_PARAM || strstr(err, want) == NULL) {
        fprintf(stderr, "trust %s: %s, \"%s\", want \"%s\"\n", authority ? authority : "(null)",
                kv_status_name(st), err, want);
        check_failures++;
    }
}

static struct pol_ctx *authorities(void)
{
    struct pol_ctx *ctx = NULL;
    char err[512] = "";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_ST(pol_new(dir, "00000000-0000-0000-0000-0000000000aa", &ctx), KV_OK);
    if (ctx == NULL)
        return NULL;
    char *r1 = rsa_jwk(ra, "\"kid\":\"r1\",\"use\":\"sig\","),
         *r2 = rsa_jwk(ra2, "\"kid\":\"r2\",");
    char *enc = rsa_jwk(ra, "\"kid\":\"r3\",\"use\":\"enc\","), *e1 = ec_jwk(ea, "\"kid\":\"e1\",");
    char *x5c = x5c_of(xa), *ec_cert = x5c_of(ea);
    char jwks[8192];

    /* an encryption key is skipped; kid r1, r2 */
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s,%s]}", enc, r1, r2);
    CHECK_ST(pol_attestation_trust(ctx, RSA_AUTH, jwks, strlen(jwks), err, sizeof(err)), KV_OK);
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", e1);
    CHECK_ST(pol_attestation_trust(ctx, EC_AUTH, jwks, strlen(jwks), err, sizeof(err)), KV_OK);
    /* Azure Attestation's /certs: RSA keys as certificates only */
    snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x1\",\"x5c\":[\"%s\"]}]}",
             x5c);
    CHECK_ST(pol_attestation_trust(ctx, X5C_AUTH, jwks, strlen(jwks), err, sizeof(err)), KV_OK);
    CHECK_STR(pol_attestation_authority_at(ctx, 0), RSA_AUTH);
    CHECK_STR(pol_attestation_authority_at(ctx, 1), EC_AUTH);
    CHECK_STR(pol_attestation_authority_at(ctx, 2), X5C_AUTH);
    CHECK(pol_attestation_authority_at(ctx, 3) == NULL);

    /* x5c is read for attestation authorities only: a federated issuer's JWKS refuses it */
    struct pol_creds *creds = NULL;
    CHECK_ST(pol_creds_add_federated(&creds, "https://i", "s", "a", jwks, strlen(jwks), err,
                                     sizeof(err)),
             KV_ERR_BAD_PARAM);
    CHECK_STR(err, "key 1 of the jwks is not a valid public RSA key (RSA: n of 2048 to 16384 "
                   "bits and e; EC: crv P-256, P-384 or P-521 and its x and y)");
    CHECK(creds == NULL);

    /* refusals, each naming the problem; nothing is added */
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", e1);
    trust_refused(ctx, NULL, jwks, "the attestation authority must be an https:// URL");
    trust_refused(ctx, "http://plain.example", jwks,
                  "the attestation authority must be an https:// URL");
    trust_refused(ctx, "https://", jwks, "must be an https:// URL");
    trust_refused(ctx, "https:///path", jwks, "must be an https:// URL");
    trust_refused(ctx, "https://a b.example", jwks, "must be an https:// URL");
    trust_refused(ctx, "attest.example", jwks, "must be an https:// URL");
    char long_url[POL_AUTHORITY_MAX + 1];
    memset(long_url, 'a', sizeof(long_url) - 1);
    memcpy(long_url, "https://", 8);
    long_url[POL_AUTHORITY_MAX] = '\0';
    trust_refused(ctx, long_url, jwks, "the attestation authority is longer than 511 bytes");
    trust_refused(ctx, "https://rsa.attest.example", jwks,
                  "the attestation authority 'https://rsa.attest.example' is already trusted");
    trust_refused(ctx, "https://ec.attest.example/", jwks, "is already trusted");
    trust_refused(ctx, "https://new.example", "{}",
                  "'jwks' must be a JWKS document: {\"keys\": [...]}");
    trust_refused(ctx, "https://new.example", "not json", "'jwks' must be a JWKS document");
    trust_refused(ctx, "https://new.example", "{\"keys\":[]}", "the jwks holds no signing key");
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", enc);
    trust_refused(ctx, "https://new.example", jwks, "the jwks holds no signing key");
    trust_refused(ctx, "https://new.example", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}",
                  "key 1 of the jwks has kty 'oct'; RSA and EC are read");
    trust_refused(ctx, "https://new.example",
                  "{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[\"bm90IGEgY2VydA==\"]}]}",
                  "key 1 of the jwks: x5c[0] is not a base64 DER certificate of an RSA key of "
                  "2048 to 16384 bits");
    trust_refused(ctx, "https://new.example", "{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[\"%%%\"]}]}",
                  "x5c[0] is not a base64 DER certificate");
    trust_refused(ctx, "https://new.example", "{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[]}]}",
                  "x5c[0] is not a base64 DER certificate");
    snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[\"%s\"]}]}", ec_cert);
    trust_refused(ctx, "https://new.example", jwks, "x5c[0] is not a base64 DER certificate");
    CHECK(pol_attestation_authority_at(ctx, 3) == NULL);

    /* at most POL_AUTHORITIES_MAX */
    struct pol_ctx *full = NULL;
    CHECK_ST(pol_new(dir, "00000000-0000-0000-0000-0000000000aa", &full), KV_OK);
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", e1);
    for (int i = 0; full != NULL && i < POL_AUTHORITIES_MAX; i++) {
        char url[64];
        snprintf(url, sizeof(url), "https://a%d.example", i);
        CHECK_ST(pol_attestation_trust(full, url, jwks, strlen(jwks), err, sizeof(err)), KV_OK);
    }
    if (full != NULL)
        trust_refused(full, "https://one-more.example", jwks,
                      "more than 16 attestation authorities");
    pol_free(full);

    free(r1);
    free(r2);
    free(enc);
    free(e1);
    free(x5c);
    free(ec_cert);
    return ctx;
}

/* ---- normal form ------------------------------------------------------------------------- */

static void normal(const char *in, const char *want)
{
    char *out = NULL, err[512] = "";
    enum kv_status st = pol_release_policy_normalize(in, strlen(in), &out, err, sizeof(err));
    if (st != KV_OK || out == NULL || strcmp(out, want) != 0) {
        fprintf(stderr, "normalize %s\n  gave %s %s%s\n  want %s\n", in, kv_status_name(st),
                out ? out : "", err, want);
        check_failures++;
    }
    /* the normal form is its own normal form */
    char *again = NULL;
    if (out != NULL &&
        (pol_release_policy_normalize(out, strlen(out), &again, err, sizeof(err)) != KV_OK ||
         strcmp(again, out) != 0)) {
        fprintf(stderr, "normalize %s: not a fixed point\n", out);
        check_failures++;
    }
    free(again);
    free(out);
}

static void refused_len(const char *in, size_t len, const char *want)
{
    char *out = NULL, err[512] = "";
    enum kv_status st = pol_release_policy_normalize(in, len, &out, err, sizeof(err));
    if (st != KV_ERR_BAD_PARAM || out != NULL || strcmp(err, want) != 0) {
        fprintf(stderr, "normalize %.300s\n  gave %s \"%s\"\n  want \"%s\"\n", in,
                kv_status_name(st), err, want);
        check_failures++;
    }
    free(out);
}

static void refused(const char *in, const char *want)
{
    refused_len(in, strlen(in), want);
}

/* A policy of one authority whose allOf holds @p conds (J form). */
static const char *P(const char *conds)
{
    return F("{'version':'1.0.0','anyOf':[{'authority':'https://a.example','allOf':[%s]}]}", conds);
}

/* What a policy of one condition is refused for, at anyOf[0].allOf[0]. */
static void cond_refused(const char *cond, const char *want)
{
    char msg[512];
    snprintf(msg, sizeof(msg), MALFORMED "anyOf[0].allOf[0]: %s", want);
    refused(P(cond), msg);
}

/* A condition nested @p levels deep in allOf/anyOf lists below an authority's allOf. */
static const char *nested(int levels)
{
    static char buf[4096];
    char inner[4200];
    snprintf(buf, sizeof(buf), "{'claim':'c','exists':true}");
    for (int i = 0; i < levels; i++) {
        snprintf(inner, sizeof(inner), "{'%s':[%.4000s]}", i % 2 ? "allOf" : "anyOf", buf);
        memcpy(buf, inner, strlen(inner) + 1 < sizeof(buf) ? strlen(inner) + 1 : 1);
    }
    return P(buf);
}

static void normal_forms(void)
{
    /* the Python SDK's policy, as AKV gave it back */
    normal(J("{'anyOf': [{'anyOf': [{'claim': 'sdk-test', 'equals': true}], 'authority': "
             "'https://skr.azurewebsites.net/'}], 'version': '1.0.0'}"),
           J("{'version':'1.0.0','anyOf':[{'authority':'https://skr.azurewebsites.net/','anyOf':"
             "[{'claim':'sdk-test','equals':'true'}]}]}"));
    /* .NET's: indented, CRLF */
    normal(J("{\r\n  'version': '1.0.0',\r\n  'anyOf': [\r\n    {\r\n      'authority': "
             "'https://a.example',\r\n      'allOf': [\r\n        {\r\n          'claim': "
             "'sdk-test',\r\n          'equals': 'true'\r\n        }\r\n      ]\r\n    }\r\n  "
             "]\r\n}\r\n"),
           J("{'version':'1.0.0','anyOf':[{'authority':'https://a.example','allOf':[{'claim':"
             "'sdk-test','equals':'true'}]}]}"));
    /* equals and notEquals as text */
    normal(P("{'equals':false,'claim':'b'},{'claim':'n','equals':1},{'claim':'f','notEquals':1.5},"
             "{'claim':'z','equals':-0},{'claim':'k','equals':1e3},{'claim':'big','equals':1e300},"
             "{'claim':'s','notEquals':''},{'claim':'t','equals':2147483648},"
             "{'claim':'d','equals':0.1}"),
           P("{'claim':'b','equals':'false'},{'claim':'n','equals':'1'},{'claim':'f','notEquals':"
             "'1.5'},{'claim':'z','equals':'0'},{'claim':'k','equals':'1000'},{'claim':'big',"
             "'equals':'1e+300'},{'claim':'s','notEquals':''},{'claim':'t','equals':'2147483648'},"
             "{'claim':'d','equals':'0.1'}"));
    /* comparisons as numbers, from numbers or numeric text */
    normal(P("{'claim':'a','less':'5'},{'claim':'b','lessOrEquals':-2.5},{'claim':'c','greater':1},"
             "{'claim':'d','greaterOrEquals':'1e2'},{'claim':'e','greater':'-0.25'},"
             "{'claim':'f','less':0.30000000000000004}"),
           P("{'claim':'a','less':5},{'claim':'b','lessOrEquals':-2.5},{'claim':'c','greater':1},"
             "{'claim':'d','greaterOrEquals':100},{'claim':'e','greater':-0.25},"
             "{'claim':'f','less':0.30000000000000004}"));
    normal(P("{'claim':'a','exists':true},{'claim':'b','exists':false}"),
           P("{'claim':'a','exists':true},{'claim':'b','exists':false}"));
    /* nesting */
    normal(P("{'anyOf':[{'claim':'a','equals':'1'},{'allOf':[{'claim':'b','exists':true},"
             "{'claim':'c','greater':'2'}]}]}"),
           P("{'anyOf':[{'claim':'a','equals':'1'},{'allOf':[{'claim':'b','exists':true},"
             "{'claim':'c','greater':2}]}]}"));
    /* the older form: condition and value */
    normal(J("{'version':'1.0','anyOf':[{'authority':'https://a.example','allOf':[{'claim':"
             "'sdk-test','condition':'equals','value':'true'}]}]}"),
           J("{'version':'1.0','anyOf':[{'authority':'https://a.example','allOf':[{'claim':"
             "'sdk-test','equals':'true'}]}]}"));
    normal(
        P("{'value':true,'condition':'equals','claim':'x'},{'claim':'y','condition':'greater',"
          "'value':'3'},{'claim':'z','condition':'exists','value':true}"),
        P("{'claim':'x','equals':'true'},{'claim':'y','greater':3},{'claim':'z','exists':true}"));
    /* several authorities, in order */
    normal(J("{'version':'1.0.0','anyOf':[{'authority':'https://b.example/','anyOf':[{'claim':"
             "'x','equals':'1'}]},{'allOf':[{'claim':'y','exists':true}],'authority':"
             "'HTTPS://a.example:8443/path?q=1'}]}"),
           J("{'version':'1.0.0','anyOf':[{'authority':'https://b.example/','anyOf':[{'claim':"
             "'x','equals':'1'}]},{'authority':'HTTPS://a.example:8443/path?q=1','allOf':[{'claim':"
             "'y','exists':true}]}]}"));
    /* strings: escapes read, written as cJSON writes them (UTF-8 as is) */
    normal(
        P("{'claim':'caf\\u00e9.a\\/b','equals':'q\\'\\\\\\n\\t\\u0001\xc3\xa9\\ud83d\\ude00'}"),
        P("{'claim':'caf\xc3\xa9.a/b','equals':'q\\'\\\\\\n\\t\\u0001\xc3\xa9\xf0\x9f\x98\x80'}"));
    /* nesting up to POL_RELEASE_DEPTH_MAX: the policy's anyOf, the authority's allOf, and six
     * more */
    normal(nested(6), nested(6));

    /* not JSON */
    const char *nojson = MALFORMED "Unable to Json Deserialize the policy object.";
    refused("not json", nojson);
    refused("", nojson);
    refused(J("{'version':'1.0.0'} x"), nojson);
    refused(J("{'version':'1.0.0',}"), nojson);
    refused(J("{'version':'1.0.0'"), nojson);
    refused(J("{'version':'1.\\u0000'}"), nojson);
    refused(J("{'version':'\xff'}"), nojson);
    refused(J("{'version':'\xc0\xaf'}"), nojson);
    refused(J("{'version':'\xed\xa0\x80'}"), nojson);
    refused(J("{'version':'\\ud800'}"), nojson);
    refused(J("{'version':'\\udc00'}"), nojson);
    refused(J("{'version':'a\tb'}"), nojson);
    refused(J("{'version':01}"), nojson);
    refused(J("{'version':+1}"), nojson);
    refused(J("{'version':.5}"), nojson);
    refused(J("{'version':1.}"), nojson);
    refused(J("{'version':'x'/*c*/}"), nojson);
    refused(J("{'version':'\\x'}"), nojson);
    refused(J("{version:'1'}"), nojson);
    refused(J("{'version':tru}"), nojson);
    refused_len(J("{'version':'1.0.0'}\0"), 20, nojson);
    char deep[3000];
    memset(deep, '[', 1001);
    memset(deep + 1001, ']', 1001);
    deep[2002] = '\0';
    refused(deep, nojson); /* deeper than cJSON reads */
    deep[1000] = ']';
    deep[2000] = '\0';
    refused(deep, MALFORMED "the policy must be a JSON object"); /* as deep as cJSON reads */
    char longnum[80];
    memset(longnum, '1', 64);
    longnum[64] = '\0';
    refused(longnum, nojson); /* longer than cJSON reads a number */
    longnum[63] = '\0';
    refused(longnum, MALFORMED "the policy must be a JSON object");

    /* too long */
    char *big = malloc(POL_RELEASE_POLICY_MAX + 2);
    memset(big, ' ', POL_RELEASE_POLICY_MAX + 1);
    big[POL_RELEASE_POLICY_MAX + 1] = '\0';
    memcpy(big + POL_RELEASE_POLICY_MAX - 2, "[]", 2);
    refused_len(big, POL_RELEASE_POLICY_MAX, MALFORMED "the policy must be a JSON object");
    refused(big, MALFORMED "the policy is longer than 32768 bytes");
    /* within the limit, but longer once its numbers are written out */
    size_t len = (size_t)snprintf(big, POL_RELEASE_POLICY_MAX, "%s",
                                  J("{'version':'1.0.0','anyOf':[{'authority':'https://a.example',"
                                    "'allOf':[{'claim':'a','less':1e-320}"));
    while (len + 40 < POL_RELEASE_POLICY_MAX)
        len += (size_t)snprintf(big + len, POL_RELEASE_POLICY_MAX - len, "%s",
                                J(",{'claim':'a','less':1e-320}"));
    len += (size_t)snprintf(big + len, POL_RELEASE_POLICY_MAX + 2 - len, "]}]}");
    CHECK(len <= POL_RELEASE_POLICY_MAX);
    refused(big, MALFORMED "the policy is longer than 32768 bytes");
    free(big);

    /* the top level */
    refused("[]", MALFORMED "the policy must be a JSON object");
    refused("\"1.0.0\"", MALFORMED "the policy must be a JSON object");
    refused(J("{'anyOf':[]}"), MALFORMED "missing 'version' property");
    refused("{}", MALFORMED "missing 'version' property");
    const char *version = MALFORMED "'version' must be \"1.0.0\" (or the older \"1.0\")";
    refused(J("{'version':'2.0','anyOf':[]}"), version);
    refused(J("{'version':'1.0.1','anyOf':[]}"), version);
    refused(J("{'version':1.0,'anyOf':[]}"), version);
    refused(J("{'version':null,'anyOf':[]}"), version);
    refused(J("{'version':'1.0.0'}"), MALFORMED "missing 'anyOf' property");
    const char *any = MALFORMED "'anyOf' must be a non-empty array of authority objects";
    refused(J("{'version':'1.0.0','anyOf':[]}"), any);
    refused(J("{'version':'1.0.0','anyOf':{}}"), any);
    refused(J("{'version':'1.0.0','anyOf':'x'}"), any);
    refused(J("{'version':'1.0.0','allOf':[]}"), MALFORMED "unknown property 'allOf'");
    refused(J("{'version':'1.0.0','anyOf':[],'x':1}"), MALFORMED "unknown property 'x'");
    refused(J("{'version':'1.0.0','version':'1.0.0','anyOf':[]}"),
            MALFORMED "duplicate property 'version'");
    refused(J("{'Version':'1.0.0','anyOf':[]}"), MALFORMED "unknown property 'Version'");

    /* authority objects */
    refused(J("{'version':'1.0.0','anyOf':[1]}"),
            MALFORMED "anyOf[0]: must be an object with 'authority' and 'allOf' or 'anyOf'");
    refused(J("{'version':'1.0.0','anyOf':[{'allOf':[{'claim':'a','exists':true}]}]}"),
            MALFORMED "anyOf[0]: missing 'authority' property");
    const char *url = MALFORMED "anyOf[0]: 'authority' must be an https:// URL of at most 511 "
                                "bytes";
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'http://a','allOf':[]}]}"), url);
    refused(J("{'version':'1.0.0','anyOf':[{'authority':7,'allOf':[]}]}"), url);
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://','allOf':[]}]}"), url);
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a b','allOf':[]}]}"), url);
    char longauth[700];
    memset(longauth, 'a', 600);
    longauth[600] = '\0';
    refused(F("{'version':'1.0.0','anyOf':[{'authority':'https://%.504s','allOf':[{'claim':'c',"
              "'exists':true}]}]}",
              longauth),
            url);
    normal(F("{'version':'1.0.0','anyOf':[{'authority':'https://%.503s','allOf':[{'claim':'c',"
             "'exists':true}]}]}",
             longauth),
           F("{'version':'1.0.0','anyOf':[{'authority':'https://%.503s','allOf':[{'claim':'c',"
             "'exists':true}]}]}",
             longauth));
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a','allOf':[{'claim':'a','exists'"
              ":true}],'anyOf':[{'claim':'a','exists':true}]}]}"),
            MALFORMED "anyOf[0]: has both 'allOf' and 'anyOf'");
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a'}]}"),
            MALFORMED "anyOf[0]: missing 'allOf' or 'anyOf' property");
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a','allOf':[]}]}"),
            MALFORMED "anyOf[0]: 'allOf' must be a non-empty array of conditions");
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a','anyOf':{}}]}"),
            MALFORMED "anyOf[0]: 'anyOf' must be a non-empty array of conditions");
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a','anyOf':[{'claim':'a','exists'"
              ":true}]},{'authority':'https://b','anyOf':[{'claim':'a','exists':true}],'x':0}]}"),
            MALFORMED "anyOf[1]: unknown property 'x'");
    refused(J("{'version':'1.0.0','anyOf':[{'authority':'https://a','authority':'https://a',"
              "'anyOf':[]}]}"),
            MALFORMED "anyOf[0]: duplicate property 'authority'");

    /* conditions */
    cond_refused("1", "a condition must be an object");
    cond_refused("[]", "a condition must be an object");
    cond_refused("{}", "missing 'claim' property");
    cond_refused("{'equals':'x'}", "missing 'claim' property");
    cond_refused("{'claim':'','equals':'x'}", "'claim' must be a non-empty string");
    cond_refused("{'claim':5,'equals':'x'}", "'claim' must be a non-empty string");
    cond_refused("{'claim':'c'}",
                 "missing an operator (equals, notEquals, less, lessOrEquals, greater, "
                 "greaterOrEquals or exists)");
    cond_refused("{'claim':'c','equals':'x','notEquals':'y'}", "more than one operator");
    cond_refused("{'claim':'c','equals':'x','foo':1}", "unknown property 'foo'");
    cond_refused("{'claim':'c','Equals':'x'}", "unknown property 'Equals'");
    cond_refused("{'claim':'c','equals':'x','equals':'y'}", "duplicate property 'equals'");
    const char *text = "'equals' must be a string, a number or a boolean";
    cond_refused("{'claim':'c','equals':null}", text);
    cond_refused("{'claim':'c','equals':{}}", text);
    cond_refused("{'claim':'c','equals':['x']}", text);
    cond_refused("{'claim':'c','equals':1e999}", text);
    cond_refused("{'claim':'c','notEquals':null}",
                 "'notEquals' must be a string, a number or a boolean");
    cond_refused("{'claim':'c','less':'abc'}", "'less' must be a number");
    cond_refused("{'claim':'c','less':' 1'}", "'less' must be a number");
    cond_refused("{'claim':'c','less':'1e999'}", "'less' must be a number");
    cond_refused("{'claim':'c','less':''}", "'less' must be a number");
    cond_refused("{'claim':'c','lessOrEquals':true}", "'lessOrEquals' must be a number");
    cond_refused("{'claim':'c','greater':null}", "'greater' must be a number");
    cond_refused("{'claim':'c','greaterOrEquals':[1]}", "'greaterOrEquals' must be a number");
    cond_refused("{'claim':'c','exists':'true'}", "'exists' must be a boolean");
    cond_refused("{'claim':'c','exists':1}", "'exists' must be a boolean");
    /* the older form */
    cond_refused("{'claim':'c','condition':'foo','value':'x'}",
                 "'condition' must be one of equals, notEquals, less, lessOrEquals, greater, "
                 "greaterOrEquals or exists");
    cond_refused("{'claim':'c','condition':1,'value':'x'}",
                 "'condition' must be one of equals, notEquals, less, lessOrEquals, greater, "
                 "greaterOrEquals or exists");
    cond_refused("{'claim':'c','condition':'equals','equals':'x','value':'x'}",
                 "more than one operator ('condition' and 'equals')");
    cond_refused("{'claim':'c','condition':'equals'}", "missing 'value' property");
    cond_refused("{'claim':'c','value':'x'}", "'value' without 'condition'");
    cond_refused("{'claim':'c','condition':'equals','value':null}",
                 "'value' must be a string, a number or a boolean");
    cond_refused("{'claim':'c','condition':'less','value':'x'}", "'value' must be a number");
    /* nested lists */
    cond_refused("{'anyOf':[{'claim':'a','exists':true}],'claim':'x'}",
                 "a nested 'anyOf' must be the condition's only property");
    cond_refused("{'allOf':[{'claim':'a','exists':true}],'anyOf':[]}",
                 "a nested 'allOf' must be the condition's only property");
    cond_refused("{'allOf':[]}", "'allOf' must be a non-empty array of conditions");
    cond_refused("{'anyOf':null}", "'anyOf' must be a non-empty array of conditions");
    refused(P("{'claim':'a','exists':true},{'anyOf':[{'claim':'b','exists':true},{'claim':'c'}]}"),
            MALFORMED "anyOf[0].allOf[1].anyOf[1]: missing an operator (equals, notEquals, less, "
                      "lessOrEquals, greater, greaterOrEquals or exists)");
    refused(nested(7),
            MALFORMED "anyOf[0].allOf[0].anyOf[0].allOf[0].anyOf[0].allOf[0].anyOf[0].allOf[0]: "
                      "'anyOf' nested deeper than 8 levels");
}

/* ---- release decisions ------------------------------------------------------------------- */

static struct pol_ctx *ctx;

/* The claims of a token from @p iss: exp, the runtime key, and @p extra (J form, after a
 * comma when not empty). */
static const char *claims(const char *iss, const char *extra)
{
    return F("{'iss':'%s','exp':%d,'x-ms-runtime':{'keys':[%s]}%s%s}", iss, EXP, rt_jwk,
             extra[0] ? "," : "", extra);
}

/* pol_release_check of @p policy (normalized first) on a token of @p key; @p want_why, when not
 * NULL, is what the refusal must say (a part of it). */
static enum pol_release decide(const char *policy, const char *tok, int64_t now,
                               struct pol_release_target *t, const char *want_why)
{
    char *norm = NULL, err[512] = "", why[512] = "x";
    struct pol_release_target scratch = {0};
    if (t == NULL)
        t = &scratch;
    if (pol_release_policy_normalize(policy, strlen(policy), &norm, err, sizeof(err)) != KV_OK) {
        fprintf(stderr, "policy refused: %s\n  %s\n", err, policy);
        check_failures++;
        return POL_RELEASE_MALFORMED;
    }
    enum pol_release r = pol_release_check(ctx, norm, strlen(norm), tok, now, t, why, sizeof(why));
    if (r == POL_RELEASE_OK && why[0] != '\0') {
        fprintf(stderr, "released, but why = \"%s\"\n", why);
        check_failures++;
    }
    if (r != POL_RELEASE_OK && (why[0] == '\0' || (want_why && !strstr(why, want_why)))) {
        fprintf(stderr, "refusal %d said \"%s\", want \"%s\"\n", r, why, want_why ? want_why : "");
        check_failures++;
    }
    /* the secret-looking claim of every token here is never quoted */
    CHECK(strstr(why, "s3cr3t") == NULL);
    pol_release_target_clear(&scratch);
    free(norm);
    return r;
}

/* A policy of one authority (J form) and its allOf (J form). */
static const char *AP(const char *authority, const char *list, const char *conds)
{
    return F("{'version':'1.0.0','anyOf':[{'authority':'%s','%s':[%s]}]}", authority, list, conds);
}

/* decide() on a token of the RSA authority (RS256, kid r1) with claims(RSA_AUTH, extra). */
static enum pol_release with_claims(const char *conds, const char *extra, const char *want_why)
{
    char *tok = token(ra, "RS256", "r1", claims(RSA_AUTH, extra));
    enum pol_release r = decide(AP(RSA_AUTH, "allOf", conds), tok, NOW, NULL, want_why);
    free(tok);
    return r;
}

/* A token of the RSA authority whose claims are @p claims_text and a filler claim of @p n
 * bytes. */
static char *padded(const char *claims_text, size_t n)
{
    size_t len = strlen(claims_text);
    char *big = malloc(len + n + 16);
    memcpy(big, claims_text, len - 1); /* without its closing brace */
    memcpy(big + len - 1, ",\"fill\":\"", 9);
    memset(big + len + 8, 'f', n);
    memcpy(big + len + 8 + n, "\"}", 3);
    char *tok = token(ra, "RS256", "r1", big);
    free(big);
    return tok;
}

static void results(void)
{
    struct pol_release_target t = {0};
    char *tok, why[512];
    char *policy = strdup(AP(RSA_AUTH, "anyOf", "{'claim':'sdk-test','equals':true}"));
    char *good = strdup(claims(RSA_AUTH, "'sdk-test':true,'x':'s3cr3t'"));

    /* released: the target is the runtime key */
    tok = token(ra, "RS256", "r1", good);
    CHECK(decide(policy, tok, NOW, &t, NULL) == POL_RELEASE_OK);
    char *n64 = NULL, *e64 = NULL;
    rsa_ne(rt, 0, &n64, &e64);
    char *got_n = testjws_b64(t.n.data, t.n.len), *got_e = testjws_b64(t.e.data, t.e.len);
    CHECK_STR(got_n, n64);
    CHECK_STR(got_e, e64);
    CHECK_STR(t.kid, "fake-release-key");
    CHECK(t.n.len == 256);
    free(got_n);
    free(got_e);
    pol_release_target_clear(&t);
    CHECK(t.n.data == NULL && t.e.data == NULL && t.kid[0] == '\0');
    pol_release_target_clear(&t);
    /* an old-form policy, not normalized, is read the same */
    const char *old = J("{'version':'1.0','anyOf':[{'authority':'https://rsa.attest.example/',"
                        "'allOf':[{'claim':'sdk-test','condition':'equals','value':'true'}]}]}");
    CHECK(pol_release_check(ctx, old, strlen(old), tok, NOW, &t, why, sizeof(why)) ==
          POL_RELEASE_OK);
    pol_release_target_clear(&t);
    /* a policy that is not valid releases nothing */
    CHECK(pol_release_check(ctx, "{}", 2, tok, NOW, &t, why, sizeof(why)) == POL_RELEASE_DENIED);
    CHECK_STR(why,
              "the key's release policy is not valid (" MALFORMED "missing 'version' property)");
    free(tok);

    /* other algorithms and authorities */
    tok = token(ra, "PS256", "r1", good);
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ra, "RS512", NULL, good);
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ea, "ES256", "e1", claims(EC_AUTH, "'sdk-test':true"));
    CHECK(decide(AP(EC_AUTH, "allOf", "{'claim':'sdk-test','equals':'true'}"), tok, NOW, NULL,
                 NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(xa, "RS256", "x1", claims(X5C_AUTH, "'sdk-test':true"));
    CHECK(decide(AP(X5C_AUTH, "allOf", "{'claim':'sdk-test','equals':'true'}"), tok, NOW, NULL,
                 NULL) == POL_RELEASE_OK);
    free(tok);

    /* malformed */
    const char *p = policy;
    CHECK(decide(p, "abc", NOW, NULL, "not a JWS in compact form (three parts)") ==
          POL_RELEASE_MALFORMED);
    CHECK(decide(p, "a.b", NOW, NULL, "not a JWS in compact form") == POL_RELEASE_MALFORMED);
    CHECK(decide(p, "a.b.c.d", NOW, NULL, "not a JWS in compact form") == POL_RELEASE_MALFORMED);
    CHECK(decide(p, "e30.e30.", NOW, NULL, "the attestation token's signature is not base64url") ==
          POL_RELEASE_MALFORMED);
    CHECK(decide(p, "e30.e30.!!", NOW, NULL, "signature is not base64url") ==
          POL_RELEASE_MALFORMED);
    CHECK(decide(p, "e30.bm90.AA", NOW, NULL,
                 "the attestation token's header or claims are not base64url JSON objects") ==
          POL_RELEASE_MALFORMED);
    CHECK(decide(p, ".e30.AA", NOW, NULL, "not base64url JSON objects") == POL_RELEASE_MALFORMED);
    CHECK(decide(p, "W10.e30.AA", NOW, NULL, "not base64url JSON objects") ==
          POL_RELEASE_MALFORMED);
    tok = token(ra, "RS256", "r1", "{\"exp\":1900000000,\"sdk-test\":true}");
    CHECK(decide(p, tok, NOW, NULL, "the attestation token has no 'iss' claim") ==
          POL_RELEASE_MALFORMED);
    free(tok);
    tok = token(ra, "RS256", "r1", "{\"iss\":7}");
    CHECK(decide(p, tok, NOW, NULL, "has no 'iss' claim") == POL_RELEASE_MALFORMED);
    free(tok);
    /* critical header extensions: kvmock understands none (RFC 7515 4.1.11) */
    char *crit_claims = strdup(claims(RSA_AUTH, "'sdk-test':true"));
    tok = testjws_sign("{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"]}", crit_claims, ra,
                       "RS256");
    CHECK(decide(p, tok, NOW, NULL, "names critical extensions (crit)") == POL_RELEASE_MALFORMED);
    free(tok);
    /* the same token without crit is granted: the refusal above is crit's */
    tok = testjws_sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}", crit_claims, ra, "RS256");
    CHECK(decide(p, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    free(crit_claims);
    CHECK(pol_release_check(ctx, p, strlen(p), NULL, NOW, &t, why, sizeof(why)) ==
          POL_RELEASE_MALFORMED);
    char *huge = malloc(POL_ATTESTATION_MAX + 2);
    memset(huge, 'a', POL_ATTESTATION_MAX + 1);
    huge[POL_ATTESTATION_MAX + 1] = '\0';
    CHECK(decide(p, huge, NOW, NULL, "the attestation token is longer than 65536 bytes") ==
          POL_RELEASE_MALFORMED);
    huge[POL_ATTESTATION_MAX] = '\0'; /* at the limit: read, and not a JWS */
    CHECK(decide(p, huge, NOW, NULL, "not a JWS in compact form") == POL_RELEASE_MALFORMED);
    free(huge);
    /* a signed token of up to POL_ATTESTATION_MAX bytes is read */
    size_t filler = 40000, len = 0;
    for (int round = 0; round < 8; round++) {
        tok = padded(good, filler);
        len = strlen(tok);
        if (len <= POL_ATTESTATION_MAX && len > POL_ATTESTATION_MAX - 4)
            break;
        free(tok);
        tok = NULL;
        /* base64url: 3 bytes of claims are 4 of the token */
        filler = (size_t)((long)filler + ((long)POL_ATTESTATION_MAX - (long)len - 2) * 3 / 4);
    }
    CHECK(tok != NULL);
    if (tok != NULL)
        CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = padded(good, filler + 3);
    CHECK(strlen(tok) > POL_ATTESTATION_MAX);
    CHECK(decide(policy, tok, NOW, NULL, "longer than 65536 bytes") == POL_RELEASE_MALFORMED);
    free(tok);

    /* its issuer is not in the policy; in it, but not trusted */
    tok = token(ra, "RS256", "r1", claims("https://other.example", "'sdk-test':true"));
    CHECK(decide(policy, tok, NOW, NULL,
                 "the token's issuer 'https://other.example' is none of the release policy's "
                 "authorities") == POL_RELEASE_NOT_IN_POLICY);
    CHECK(decide(AP("https://other.example", "allOf", "{'claim':'sdk-test','equals':'true'}"), tok,
                 NOW, NULL,
                 "the attestation authority 'https://other.example' is not one kvmock trusts") ==
          POL_RELEASE_UNREACHABLE);
    free(tok);
    tok = token(ra, "RS256", "r1", claims("https://rsa.attest.example//", "'sdk-test':true"));
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_NOT_IN_POLICY);
    free(tok);
    tok = token(ra, "RS256", "r1", claims("https://RSA.attest.example/", "'sdk-test':true"));
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_NOT_IN_POLICY);
    free(tok);

    /* bad signatures */
    const char *rsa_key_of = "no key of the attestation authority 'https://rsa.attest.example/'";
    tok = token(ra, "HS256", "r1", good);
    CHECK(decide(policy, tok, NOW, NULL,
                 "the token's alg is not one of RS256, RS384, RS512, PS256, PS384, PS512, "
                 "ES256, ES384, ES512") == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ra, "none", NULL, good);
    CHECK(decide(policy, tok, NOW, NULL, "alg is not one of") == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = testjws_sign("{\"kid\":\"r1\"}", good, ra, "RS256");
    CHECK(decide(policy, tok, NOW, NULL, "alg is not one of") == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ra, "RS256", "nope", good);
    CHECK(decide(policy, tok, NOW, NULL,
                 "no key of the attestation authority 'https://rsa.attest.example/' has the "
                 "token's kid") == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ra, "RS256", "r3", good); /* the encryption key's kid: not read */
    CHECK(decide(policy, tok, NOW, NULL, "has the token's kid") == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    /* kid selects the key: r2 does not verify ra's signature */
    tok = token(ra, "RS256", "r2", good);
    CHECK(decide(policy, tok, NOW, NULL, "verifies the token's signature") ==
          POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ra2, "RS256", "r2", good);
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ra2, "RS256", NULL, good); /* no kid: every key is tried */
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(rt, "RS256", NULL, good);
    CHECK(decide(policy, tok, NOW, NULL, rsa_key_of) == POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ea, "ES256", "r1", good); /* an ES token from an RSA key's kid */
    CHECK(decide(policy, tok, NOW, NULL, "verifies the token's signature") ==
          POL_RELEASE_BAD_SIGNATURE);
    free(tok);
    tok = token(ra, "RS256", "r1", good); /* tampered: the claims of another token */
    char *other = token(ra, "RS256", "r1", claims(RSA_AUTH, "'sdk-test':true,'y':1"));
    char *d1 = strchr(tok, '.'), *d2 = strchr(other, '.');
    char *spliced = malloc(strlen(tok) + strlen(other));
    snprintf(spliced, strlen(tok) + strlen(other), "%.*s%.*s%s", (int)(d1 - tok), tok,
             (int)(strrchr(other, '.') - d2), d2, strrchr(tok, '.'));
    CHECK(decide(policy, spliced, NOW, NULL, "verifies the token's signature") ==
          POL_RELEASE_BAD_SIGNATURE);
    free(spliced);
    free(other);
    free(tok);
    tok = token(ra, "RS256", "e1", claims(EC_AUTH, "'sdk-test':true"));
    CHECK(decide(AP(EC_AUTH, "allOf", "{'claim':'sdk-test','exists':true}"), tok, NOW, NULL,
                 "no key of the attestation authority 'https://ec.attest.example' verifies") ==
          POL_RELEASE_BAD_SIGNATURE);
    free(tok);

    /* time: exp required, nbf optional, POL_ASSERTION_SKEW either side */
    tok = token(ra, "RS256", "r1",
                F("{'iss':'%s','sdk-test':true,'x-ms-runtime':{'keys':[%s]}}", RSA_AUTH, rt_jwk));
    CHECK(decide(policy, tok, NOW, NULL,
                 "the token's exp is required and exp and nbf must be NumericDates") ==
          POL_RELEASE_TIME);
    free(tok);
    tok = token(ra, "RS256", "r1",
                F("{'iss':'%s','exp':'%d','sdk-test':true,'x-ms-runtime':{'keys':[%s]}}", RSA_AUTH,
                  EXP, rt_jwk));
    CHECK(decide(policy, tok, NOW, NULL, "exp is required") == POL_RELEASE_TIME);
    free(tok);
    tok = token(ra, "RS256", "r1",
                F("{'iss':'%s','exp':%d,'nbf':'x','sdk-test':true,'x-ms-runtime':{'keys':[%s]}}",
                  RSA_AUTH, EXP, rt_jwk));
    CHECK(decide(policy, tok, NOW, NULL, "NumericDates") == POL_RELEASE_TIME);
    free(tok);
    tok = token(ra, "RS256", "r1",
                F("{'iss':'%s','exp':%d,'nbf':%d,'sdk-test':true,'x-ms-runtime':{'keys':[%s]}}",
                  RSA_AUTH, EXP, NOW + 100, rt_jwk));
    CHECK(decide(policy, tok, EXP + POL_ASSERTION_SKEW - 1, NULL, NULL) == POL_RELEASE_OK);
    CHECK(decide(policy, tok, EXP + POL_ASSERTION_SKEW, NULL, "the token expired at 1800000600") ==
          POL_RELEASE_TIME);
    CHECK(decide(policy, tok, NOW + 100 - POL_ASSERTION_SKEW, NULL, NULL) == POL_RELEASE_OK);
    CHECK(decide(policy, tok, NOW + 100 - POL_ASSERTION_SKEW - 1, NULL,
                 "the token is not valid before 1800000100") == POL_RELEASE_TIME);
    free(tok);
    /* a bad signature is reported before the time */
    tok = token(rt, "RS256", "r1",
                F("{'iss':'%s','sdk-test':true,'x-ms-runtime':{'keys':[%s]}}", RSA_AUTH, rt_jwk));
    CHECK(decide(policy, tok, NOW, NULL, NULL) == POL_RELEASE_BAD_SIGNATURE);
    free(tok);

    /* denied */
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'sdk-test':false,'x':'s3cr3t'"));
    CHECK(decide(policy, tok, NOW, NULL,
                 "the token's claims do not meet the release policy for "
                 "'https://rsa.attest.example/': no condition of an anyOf is met (the first: "
                 "claim 'sdk-test' is not \"true\")") == POL_RELEASE_DENIED);
    CHECK(decide(AP(RSA_AUTH, "allOf", "{'claim':'x','equals':'public'}"), tok, NOW, NULL,
                 "claim 'x' is not \"public\"") == POL_RELEASE_DENIED);
    free(tok);
    free(policy);
    free(good);
    free(n64);
    free(e64);
}

static void conditions(void)
{
    /* claim paths */
    const char *tee = "'x-ms-isolation-tee':{'x-ms-attestation-type':'sevsnpvm','x-ms-compliance-"
                      "status':'azure-compliant-cvm','nested':{'deeper':{'v':3}}},'a.b':'dotted',"
                      "'arr':[{'v':1}]";
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.x-ms-attestation-type','equals':'sevsnpvm'}",
                      tee, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.nested.deeper.v','greaterOrEquals':3}", tee,
                      NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.nested.deeper','exists':true}", tee, NULL) ==
          POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.nested.deeper.w','exists':true}", tee,
                      "claim 'x-ms-isolation-tee.nested.deeper.w' is not in the token") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.x-ms-attestation-type.x','exists':true}", tee,
                      NULL) == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'x-ms-attestation-type','equals':'sevsnpvm'}", tee,
                      "claim 'x-ms-attestation-type' is not in the token") == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'a.b','exists':true}", tee, NULL) == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'arr.0.v','exists':true}", tee, NULL) == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'arr','exists':true}", tee, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'x-ms-isolation-tee.','exists':true}", tee, NULL) ==
          POL_RELEASE_DENIED);

    /* equals compares text: booleans and numbers by their text, exactly */
    const char *typed = "'t':true,'f':false,'n':3,'r':1.5,'s':'true','e':'','nul':null,'o':{},"
                        "'big':1e300,'neg':-7";
    CHECK(with_claims("{'claim':'t','equals':'true'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'t','equals':true}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'f','equals':'false'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'t','equals':'True'}", typed, NULL) == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'s','equals':true}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'n','equals':'3'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'n','equals':3.0}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'n','equals':'3.0'}", typed, NULL) == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'r','equals':'1.5'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'big','equals':1e300}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'neg','equals':'-7'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'e','equals':''}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'nul','equals':'null'}", typed,
                      "claim 'nul' is not a string, a number or a boolean") == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'o','equals':'{}'}", typed,
                      "is not a string, a number or a "
                      "boolean") == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'missing','equals':''}", typed, "is not in the token") ==
          POL_RELEASE_DENIED);
    /* notEquals */
    CHECK(with_claims("{'claim':'s','notEquals':'false'}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'t','notEquals':true}", typed, "claim 't' is \"true\"") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'missing','notEquals':'x'}", typed, "is not in the token") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'o','notEquals':'x'}", typed, NULL) == POL_RELEASE_DENIED);

    /* comparisons: numbers, and numeric text */
    const char *nums = "'svn':2,'text':'4','word':'four','flag':true,'frac':0.5";
    CHECK(with_claims("{'claim':'svn','greater':1}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'svn','greater':2}", nums, "claim 'svn' is not greater than 2") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'svn','greaterOrEquals':'2'}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'svn','greaterOrEquals':2.5}", nums,
                      "claim 'svn' is not at least 2.5") == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'svn','less':3}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'svn','less':2}", nums, "claim 'svn' is not less than 2") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'svn','lessOrEquals':2}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'svn','lessOrEquals':1.99}", nums, "is not at most 1.99") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'text','greater':3}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'frac','less':'1e0'}", nums, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'word','greater':3}", nums, "claim 'word' is not a number") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'flag','greater':0}", nums, "is not a number") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'none','less':0}", nums, "is not in the token") ==
          POL_RELEASE_DENIED);

    /* exists */
    CHECK(with_claims("{'claim':'nul','exists':true}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'none','exists':false}", typed, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'t','exists':false}", typed, "claim 't' is in the token") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'none','exists':true}", typed,
                      "claim 'none' is not in the token") == POL_RELEASE_DENIED);

    /* allOf needs every condition, anyOf one; nested */
    const char *ab = "'a':'1','b':'2'";
    CHECK(with_claims("{'claim':'a','equals':'1'},{'claim':'b','equals':'2'}", ab, NULL) ==
          POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'a','equals':'1'},{'claim':'b','equals':'3'}", ab,
                      "claim 'b' is not \"3\"") == POL_RELEASE_DENIED);
    CHECK(with_claims("{'claim':'a','equals':'1'},{'anyOf':[{'claim':'b','equals':'3'},{'claim':"
                      "'b','equals':'2'}]}",
                      ab, NULL) == POL_RELEASE_OK);
    CHECK(with_claims("{'claim':'a','equals':'1'},{'anyOf':[{'claim':'b','equals':'3'},{'claim':"
                      "'c','exists':true}]}",
                      ab, "no condition of an anyOf is met (the first: claim 'b' is not \"3\")") ==
          POL_RELEASE_DENIED);
    CHECK(with_claims("{'anyOf':[{'allOf':[{'claim':'a','equals':'1'},{'claim':'b','equals':'9'}]},"
                      "{'allOf':[{'claim':'a','equals':'1'},{'claim':'b','equals':'2'}]}]}",
                      ab, NULL) == POL_RELEASE_OK);
    char *tok = token(ra, "RS256", "r1", claims(RSA_AUTH, ab));
    CHECK(decide(AP(RSA_AUTH, "anyOf", "{'claim':'a','equals':'0'},{'claim':'b','equals':'2'}"),
                 tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    CHECK(decide(AP(RSA_AUTH, "anyOf", "{'claim':'a','equals':'0'},{'claim':'b','equals':'0'}"),
                 tok, NOW, NULL, "the first: claim 'a' is not \"0\"") == POL_RELEASE_DENIED);
    free(tok);
    /* the deepest nesting allowed is evaluated */
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'c':1"));
    const char *deep = nested(6);
    const char *a_example = strstr(deep, "https://a.example");
    char deep_rsa[4096];
    snprintf(deep_rsa, sizeof(deep_rsa), "%.*s%s%s", (int)(a_example - deep), deep, RSA_AUTH,
             a_example + strlen("https://a.example"));
    CHECK(decide(deep_rsa, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
}

static void authorities_and_keys(void)
{
    char *tok;
    /* several authorities: the token's issuer picks its object */
    char *two = strdup(F("{'version':'1.0.0','anyOf':[{'authority':'%s','allOf':[{'claim':'a',"
                         "'exists':true}]},{'authority':'%s','allOf':[{'claim':'b','exists':true}]}"
                         "]}",
                         RSA_AUTH, EC_AUTH));
    tok = token(ea, "ES256", "e1", claims(EC_AUTH, "'b':1"));
    CHECK(decide(two, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'b':1"));
    CHECK(decide(two, tok, NOW, NULL, "claim 'a' is not in the token") == POL_RELEASE_DENIED);
    free(tok);
    /* the same authority twice: either object may pass */
    char *twice = strdup(F("{'version':'1.0.0','anyOf':[{'authority':'%s','allOf':[{'claim':'a',"
                           "'exists':true}]},{'authority':'https://rsa.attest.example','anyOf':[{"
                           "'claim':'b','exists':true}]}]}",
                           RSA_AUTH));
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'b':1"));
    CHECK(decide(twice, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'c':1"));
    CHECK(decide(twice, tok, NOW, NULL, "claim 'a' is not in the token") == POL_RELEASE_DENIED);
    free(tok);

    /* trailing slashes: one ignored on either side, in the policy, the token and the trust */
    char *no_slash =
        strdup(AP("https://rsa.attest.example", "allOf", "{'claim':'a','exists':true}"));
    char *slash = strdup(AP("https://ec.attest.example/", "allOf", "{'claim':'a','exists':true}"));
    tok = token(ra, "RS256", "r1", claims("https://rsa.attest.example", "'a':1"));
    CHECK(decide(no_slash, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ra, "RS256", "r1", claims(RSA_AUTH, "'a':1"));
    CHECK(decide(no_slash, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ea, "ES256", "e1", claims("https://ec.attest.example/", "'a':1"));
    CHECK(decide(slash, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);
    tok = token(ea, "ES256", "e1", claims(EC_AUTH, "'a':1"));
    CHECK(decide(slash, tok, NOW, NULL, NULL) == POL_RELEASE_OK);
    free(tok);

    /* the runtime key */
    struct pol_release_target t = {0};
    char *n64, *e64, *pad64, *ign;
    rsa_ne(rt, 0, &n64, &e64);
    rsa_ne(rt, 1, &pad64, &ign);
    char *ec_key = ec_jwk(ec_rt, "\"kid\":\"ec\",\"use\":\"enc\",");
    char *no_use = rsa_jwk(rt, "\"kid\":\"nouse\",");
    char *sig = rsa_jwk(rt, "\"kid\":\"sig\",\"use\":\"sig\",");
    char *ops_str = rsa_jwk(rt, "\"kid\":\"opsstr\",\"key_ops\":\"encrypt\",");
    char *ops_other = rsa_jwk(rt, "\"kid\":\"opsother\",\"key_ops\":[\"wrapKey\",\"verify\"],");
    char *ops = rsa_jwk(rt, "\"kid\":\"k4\",\"key_ops\":[\"verify\",\"encrypt\"],");
    char *enc = rsa_jwk(rt, "\"kid\":\"k5\",\"use\":\"enc\",");
    char *small = rsa_jwk(rt2047, "\"kid\":\"small\",\"use\":\"enc\",");
    char *large = rsa_jwk(rt4096, "\"kid\":\"large\",\"use\":\"enc\",");
    /* kids of POL_RELEASE_KID_MAX - 1 bytes (copied) and of one more (too long) */
    char kid_fits[POL_RELEASE_KID_MAX + 40], kid_long[POL_RELEASE_KID_MAX + 40];
    char max_kid[POL_RELEASE_KID_MAX];
    memset(max_kid, 'k', sizeof(max_kid) - 1);
    max_kid[sizeof(max_kid) - 1] = '\0';
    snprintf(kid_fits, sizeof(kid_fits), "\"kid\":\"%s\",\"use\":\"enc\",", max_kid);
    snprintf(kid_long, sizeof(kid_long), "\"kid\":\"%sk\",\"use\":\"enc\",", max_kid);
    char *kid_max = rsa_jwk(rt, kid_fits), *kid_over = rsa_jwk(rt, kid_long);
    char *kid_num = rsa_jwk(rt, "\"kid\":7,\"use\":\"enc\",");
    char *no_kid = rsa_jwk(rt, "\"use\":\"enc\",");
    char *pol = strdup(AP(RSA_AUTH, "allOf", "{'claim':'iss','exists':true}"));

    struct {
        const char *runtime; /* J form claims after iss and exp */
        enum pol_release want;
        const char *kid;
    } cases[] = {
        {F("'x-ms-runtime':{'keys':[%s,%s,%s,%s,%s,%s,%s]}", ec_key, no_use, sig, ops_str,
           ops_other, ops, enc),
         POL_RELEASE_OK, "k4"},
        {F("'x-ms-runtime':{'keys':[%s,%s]}", enc, ops), POL_RELEASE_OK, "k5"},
        {F("'x-ms-runtime':{'keys':[%s,%s,%s]}", ec_key, no_use, sig), POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[]}"), POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':{}}"), POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{}"), POL_RELEASE_NO_KEY, NULL},
        {F("'y':1"), POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[1,'x',null,%s]}", enc), POL_RELEASE_OK, "k5"},
        /* the TEE's own runtime key, when the top level has none that fits */
        {F("'x-ms-isolation-tee':{'x-ms-runtime':{'keys':[%s]}}", ops), POL_RELEASE_OK, "k4"},
        {F("'x-ms-runtime':{'keys':[%s]},'x-ms-isolation-tee':{'x-ms-runtime':{'keys':[%s]}}",
           no_use, enc),
         POL_RELEASE_OK, "k5"},
        {F("'x-ms-runtime':{'keys':[%s]},'x-ms-isolation-tee':{'x-ms-runtime':{'keys':[%s]}}", enc,
           ops),
         POL_RELEASE_OK, "k5"},
        {F("'x-ms-isolation-tee':{'x-ms-runtime':{'keys':[%s]}}", sig), POL_RELEASE_NO_KEY, NULL},
        /* 2048 to 4096 bits */
        {F("'x-ms-runtime':{'keys':[%s,%s]}", small, enc), POL_RELEASE_OK, "k5"},
        {F("'x-ms-runtime':{'keys':[%s]}", small), POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[%s]}", large), POL_RELEASE_OK, "large"},
        /* kid: copied, or "" without one; one too long or not a string makes the key unfit */
        {F("'x-ms-runtime':{'keys':[%s,%s]}", kid_over, no_kid), POL_RELEASE_OK, ""},
        {F("'x-ms-runtime':{'keys':[%s]}", kid_max), POL_RELEASE_OK, max_kid},
        {F("'x-ms-runtime':{'keys':[%s]}", kid_num), POL_RELEASE_NO_KEY, NULL},
        /* n with a leading zero byte, e as AKV writes it */
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA','kid':'p','use':'enc','n':'%s','e':'AAEAAQ'}]}",
           pad64),
         POL_RELEASE_OK, "p"},
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA','kid':'p','use':'enc','n':'%s','e':'Ag'}]}", n64),
         POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA','kid':'p','use':'enc','n':'%s','e':''}]}", n64),
         POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA','kid':'p','use':'enc','n':'!!','e':'AQAB'}]}"),
         POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA','kid':'p','use':'enc','e':'AQAB'}]}"),
         POL_RELEASE_NO_KEY, NULL},
        {F("'x-ms-runtime':{'keys':[{'kty':'RSA-HSM','kid':'p','use':'enc','n':'%s','e':'AQAB'}]}",
           n64),
         POL_RELEASE_NO_KEY, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char claims_text[16384];
        snprintf(claims_text, sizeof(claims_text), "{\"iss\":\"%s\",\"exp\":%d,%s}", RSA_AUTH, EXP,
                 cases[i].runtime);
        tok = token(ra, "RS256", "r1", claims_text);
        enum pol_release r =
            decide(pol, tok, NOW, &t,
                   cases[i].want == POL_RELEASE_NO_KEY
                       ? "the token's x-ms-runtime.keys holds no RSA key of 2048 to 4096 bits for "
                         "encryption (use \"enc\" or key_ops \"encrypt\")"
                       : NULL);
        if (r != cases[i].want || (r == POL_RELEASE_OK && strcmp(t.kid, cases[i].kid) != 0)) {
            fprintf(stderr, "runtime key case %zu: %d kid '%s', want %d '%s'\n", i, r, t.kid,
                    cases[i].want, cases[i].kid ? cases[i].kid : "");
            check_failures++;
        }
        if (r != cases[i].want) {
            pol_release_target_clear(&t);
            free(tok);
            continue;
        }
        if (r == POL_RELEASE_OK && strcmp(cases[i].kid, "large") != 0) {
            char *got = testjws_b64(t.n.data, t.n.len), *got_e = testjws_b64(t.e.data, t.e.len);
            CHECK_STR(got, n64);
            CHECK_STR(got_e, "AQAB");
            free(got);
            free(got_e);
        }
        if (r == POL_RELEASE_OK && strcmp(cases[i].kid, "large") == 0)
            CHECK(t.n.len == 512);
        pol_release_target_clear(&t);
        free(tok);
    }
    free(n64);
    free(e64);
    free(pad64);
    free(ign);
    free(ec_key);
    free(no_use);
    free(sig);
    free(ops_str);
    free(ops_other);
    free(ops);
    free(enc);
    free(small);
    free(large);
    free(kid_max);
    free(kid_over);
    free(kid_num);
    free(pol);
    free(two);
    free(twice);
    free(slash);
    free(no_slash);
    free(no_kid);
}

int main(void)
{
    ra = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ra2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    xa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rt = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rt2047 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2047);
    rt4096 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
    ea = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_rt = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    CHECK(ra && ra2 && xa && rt && rt2047 && rt4096 && ea && ec_rt);
    if (check_failures)
        CHECK_DONE();
    char *jwk = rsa_jwk(rt, "\"kid\":\"fake-release-key\",\"use\":\"enc\",");
    snprintf(rt_jwk, sizeof(rt_jwk), "%s", jwk);
    free(jwk);

    normal_forms();
    ctx = authorities();
    if (ctx != NULL) {
        results();
        conditions();
        authorities_and_keys();
    }
    pol_free(ctx);
    check_remove_dir(dir);
    EVP_PKEY_free(ra);
    EVP_PKEY_free(ra2);
    EVP_PKEY_free(xa);
    EVP_PKEY_free(rt);
    EVP_PKEY_free(rt2047);
    EVP_PKEY_free(rt4096);
    EVP_PKEY_free(ea);
    EVP_PKEY_free(ec_rt);
    CHECK_DONE();
}
