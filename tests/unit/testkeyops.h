/* A key's key_ops as a client gives them and as answers show them, for the keystore's tests
 * of their order (test_store.c, test_lifecycle.c). */
#ifndef KV_TESTKEYOPS_H
#define KV_TESTKEYOPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ks.h"

/* The order of the example in Terraform's azurerm documentation (key_opts), not kvmock's
 * fixed order (KO_FIXED_TEXT). */
static const char *const KO_TERRAFORM[] = {"decrypt",   "encrypt", "sign",
                                           "unwrapKey", "verify",  "wrapKey"};
#define KO_TERRAFORM_TEXT "decrypt,encrypt,sign,unwrapKey,verify,wrapKey"
#define KO_FIXED_TEXT     "encrypt,decrypt,sign,verify,wrapKey,unwrapKey"

/* A set and its order from @p n names, as a client's key_ops array lists them. */
static inline void ko_parse(const char *const *names, size_t n, unsigned *ops, uint32_t *order)
{
    *ops = 0;
    *order = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned op = 0;
        CHECK_ST(ks_keyop_parse(names[i], &op), KV_OK);
        ks_keyops_add(ops, order, op);
    }
}

/* The key_ops of @p k as answers show them, joined by commas ("" for @p k NULL). */
static inline const char *ko_text(const struct ks_key *k, char *buf, size_t cap)
{
    unsigned list[KS_OPS_MAX];
    size_t n = k != NULL ? ks_keyops_list(k->ops, k->ops_order, list) : 0, used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? "," : "", ks_keyop_name(list[i]));
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

#define KO_CHECK(k, want)                                                                          \
    do {                                                                                           \
        char ko_buf_[128];                                                                         \
        CHECK_STR(ko_text((k), ko_buf_, sizeof(ko_buf_)), (want));                                 \
    } while (0)

#endif
