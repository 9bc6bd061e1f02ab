#define _GNU_SOURCE /* memmem */
/* Sealing: round trip, and every kind of tampering is refused. */
#include <string.h>

#include "check.h"
#include "seal.h"

int main(void)
{
    CHECK(sodium_init() >= 0);
    unsigned char root[KS_ROOT_KEY_LEN], other[KS_ROOT_KEY_LEN];
    randombytes_buf(root, sizeof(root));
    randombytes_buf(other, sizeof(other));
    const unsigned char plain[] = "private key bytes, PKCS#8 in real life";
    const char ad[] = "default\0key1\0v1";

    struct kv_buf blob = {0}, out = {0};
    CHECK_ST(ks_seal(root, ad, sizeof(ad), plain, sizeof(plain), &blob), KV_OK);
    CHECK(blob.len > sizeof(plain));
    /* the plaintext does not appear in the blob */
    CHECK(memmem(blob.data, blob.len, "private key", 11) == NULL);

    CHECK_ST(ks_unseal(root, ad, sizeof(ad), blob.data, blob.len, &out), KV_OK);
    CHECK(out.len == sizeof(plain) && memcmp(out.data, plain, out.len) == 0);
    kv_buf_wipe(&out);

    /* two seals of the same bytes differ (fresh nonce) */
    struct kv_buf blob2 = {0};
    CHECK_ST(ks_seal(root, ad, sizeof(ad), plain, sizeof(plain), &blob2), KV_OK);
    CHECK(blob2.len == blob.len && memcmp(blob2.data, blob.data, blob.len) != 0);
    kv_buf_free(&blob2);

    /* wrong key, wrong location, flipped bits, truncation */
    CHECK(ks_unseal(other, ad, sizeof(ad), blob.data, blob.len, &out) != KV_OK);
    const char ad2[] = "default\0key2\0v1";
    CHECK(ks_unseal(root, ad2, sizeof(ad2), blob.data, blob.len, &out) != KV_OK);
    int all_refused = 1;
    for (size_t i = 0; i < blob.len; i++) {
        blob.data[i] ^= 0x01;
        if (ks_unseal(root, ad, sizeof(ad), blob.data, blob.len, &out) == KV_OK)
            all_refused = 0;
        blob.data[i] ^= 0x01;
    }
    CHECK(all_refused);
    CHECK(ks_unseal(root, ad, sizeof(ad), blob.data, blob.len - 1, &out) != KV_OK);
    CHECK(ks_unseal(root, ad, sizeof(ad), blob.data, 3, &out) != KV_OK);
    CHECK(out.data == NULL);
    kv_buf_free(&blob);
    CHECK_DONE();
}
