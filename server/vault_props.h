/**
 * @file vault_props.h
 * @brief The vault properties kvmock keeps for Resource Manager beyond its own (sku,
 * enabledFor*, publicNetworkAccess, networkAcls), read from the management plane's
 * bodies and the configuration file, and written into a vault's answer.
 */
#ifndef KV_VAULT_PROPS_H
#define KV_VAULT_PROPS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "ks.h"
#include "pol.h"

struct srv_req;

/** The answer of srv_vault_props_parse() when out of memory (not the body's fault). */
extern const char srv_vault_props_nomem[];

/** @brief Whether @p name is one of those properties (`sku`, `networkAcls`, …). */
int srv_vault_arm_prop(const char *name);

/**
 * @brief Read the vault properties kvmock keeps beyond its own from a PUT or PATCH
 * body's (or the configuration file's) "properties": `sku`, `enabledForDeployment`,
 * `enabledForDiskEncryption`, `enabledForTemplateDeployment`, `publicNetworkAccess`
 * and `networkAcls` (vault_props.c). @p v holds the values to keep for what is not
 * given. A given networkAcls replaces the vault's whole rule set, its lists in
 * @p rules (then v->net_rules points at it; free with ks_net_rules_clear()).
 * @return NULL, or why the body is refused (400), possibly in @p why;
 *   srv_vault_props_nomem when out of memory.
 */
const char *srv_vault_props_parse(const cJSON *props, struct ks_vault *v,
                                  struct ks_net_rules *rules, char *why, size_t cap);

/**
 * @brief Read an access policy's permission lists (`keys`, `secrets`, `certificates`,
 * `storage`) from its "permissions" object @p perms into @p p's lists, each in its order,
 * and settle @p p (pol_policy_settle()). A list may be absent, or null with @p allow_null.
 * @return 1; 0 when list @p bad_list is no array (@p bad_name NULL) or names what it does
 *   not know (@p bad_name that name, "?" for a non-string).
 */
int srv_policy_lists_parse(const cJSON *perms, int allow_null, struct pol_access_policy *p,
                           enum pol_list *bad_list, const char **bad_name);

/** @brief Add those properties to a vault's answer's "properties" (which has none of
 * them yet): the network rule lists are @p v->net_rules when set (as a write gave them),
 * else read from the store. 0 when out of memory or the store failed. */
int srv_vault_props_json(struct srv_req *req, cJSON *props, const struct ks_vault *v);

#endif
