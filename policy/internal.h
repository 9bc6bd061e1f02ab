/* Policy-internal definitions shared by the policy sources. */
#ifndef POL_INTERNAL_H
#define POL_INTERNAL_H

#include <sodium.h>

#include "pol.h"

#define POL_SECRET_LEN crypto_auth_hmacsha256_KEYBYTES

struct pol_ctx {
    char tenant_id[POL_ID_MAX];
    unsigned char *secret; /**< sodium_malloc'd token signing key */
    struct pol_identity *ids;
    size_t n_ids;
};

#endif
