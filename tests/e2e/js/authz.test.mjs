#!/usr/bin/env node
// Identities and authorization through the official JS SDKs: a user-assigned
// managed identity (ManagedIdentityCredential({clientId})), client
// credentials against kvmock's Entra-shaped authority (ClientSecretCredential
// with authorityHost and disableInstanceDiscovery), access policies and RBAC
// enforced per call, and revocation through the management plane with
// @azure/arm-keyvault, including soft delete of whole vaults (delete,
// getDeleted, listDeleted, recover through createMode "recover",
// beginPurgeDeletedAndWait), the vault firewall (networkAcls and
// publicNetworkAccess set through vaults.beginCreateOrUpdateAndWait and
// vaults.update, enforced on the data plane with 403 ForbiddenByFirewall /
// ForbiddenByConnection), resource groups through @azure/arm-resources, and RBAC
// through @azure/arm-authorization (a role
// found by name, assigned, listed, removed). The JS counterpart of
// test_python_authz.py.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/authz.test.mjs --kvmock build/kvmock
//
// The script is both the driver (starts kvmock with a config file, stops it
// and checks a clean exit) and, with --child, the scenario (see helpers.mjs).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  advanceClock, DAY, decodeJwt, errorBody, expectRestError, isChild, makeRecorder, makeReporter, runDriver,
  runScenario, sameBytes, scenarioEnv,
} from "./helpers.mjs";

const TENANT = "6b766d6f-636b-4000-8000-000000000001";
const OTHER_TENANT = "6b766d6f-636b-4000-8000-0000000000ff";
const APP = { name: "app", objectId: "0a000000-0000-4000-8000-000000000001", clientId: "0c000000-0000-4000-8000-000000000001", default: true };
const CI = { name: "ci", objectId: "0a000000-0000-4000-8000-000000000002", clientId: "0c000000-0000-4000-8000-000000000002", clientSecret: "ci-secret-1", manage: true };
const DISK = { name: "disk-service", objectId: "0a000000-0000-4000-8000-000000000003", clientId: "0c000000-0000-4000-8000-000000000003" };
const GUEST = { name: "guest", objectId: "0a000000-0000-4000-8000-000000000004", clientId: "0c000000-0000-4000-8000-000000000004", tenantId: OTHER_TENANT };
const ALL = { keys: ["all"] };
const DISK_PERMS = { keys: ["get", "wrapKey", "unwrapKey"] };
const CONFIG = {
  tenantId: TENANT,
  identities: [APP, CI, DISK, GUEST],
  vaults: [
    { name: "cmk", properties: { accessPolicies: [
      { objectId: CI.objectId, permissions: ALL },
      { objectId: DISK.objectId, permissions: DISK_PERMS },
    ] } },
    { name: "rbac", properties: { enableRbacAuthorization: true } },
  ],
  roleAssignments: [
    { principalId: CI.objectId, roleDefinitionName: "Key Vault Crypto Officer", scope: "/vaults/rbac" },
    { principalId: DISK.objectId, roleDefinitionName: "Key Vault Crypto Service Encryption User", scope: "/vaults/rbac/keys/disk" },
  ],
};
const SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";
const RG = "rg";
// The functional management-plane checks use the api-version the README
// documents; a separate group checks the SDK's own default version.
const ARM_API_VERSION = "2023-07-01";

if (!isChild()) {
  await runDriver({ script: fileURLToPath(import.meta.url), config: CONFIG });
} else {
  runScenario("[authz]", scenario);
}

async function scenario() {
  const { ClientSecretCredential, ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");
  const { KeyVaultManagementClient } = await import("@azure/arm-keyvault");
  const { AuthorizationManagementClient } = await import("@azure/arm-authorization");
  const { ResourceManagementClient } = await import("@azure/arm-resources");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[authz]");
  const authority = env.localhostUrl;

  // What the README documents for JS client credentials.
  const ciCred = () => new ClientSecretCredential(TENANT, CI.clientId, CI.clientSecret,
    { authorityHost: authority, disableInstanceDiscovery: true });
  const diskCred = () => new ManagedIdentityCredential({ clientId: DISK.clientId });
  const keys = (vault, cred) => new KeyClient(env.vaultUrl(vault), cred, rec.options());
  const crypto = (key, cred) => new CryptographyClient(key, cred, rec.options());
  // apiVersion null: the SDK's own default (2026-02-01 in 5.0.0). No scope is given: the
  // client asks for "{endpoint}/.default", a token kvmock's endpoint takes as Azure's
  // Resource Manager takes one for itself.
  const arm = (cred, apiVersion = ARM_API_VERSION) => new KeyVaultManagementClient(cred, SUBSCRIPTION, rec.options({
    endpoint: authority,
    ...(apiVersion ? { apiVersion } : {}),
  }));

  /**
   * 403 with RestError.code Forbidden, the innererror code, and a message
   * naming the caller's object id; returns the body. paged: the SDK's paging
   * helper replaces code and message with "Pagination failed with unexpected
   * statusCode 403", so code and message are read from the recorded body.
   */
  async function refused(promise, inner, what, { oid = DISK.objectId, paged = false } = {}) {
    const err = await expectRestError(promise, 403, paged ? undefined : "Forbidden", what);
    const body = errorBody(err, rec);
    assert.equal(body.error?.code, "Forbidden", `${what}: error.code in the body`);
    assert.equal(body.error?.innererror?.code, inner, `${what}: innererror.code (body ${JSON.stringify(body)})`);
    const message = paged ? body.error?.message ?? "" : err.message;
    assert.ok(message.includes(oid), `${what}: the message names the caller's object id ${oid}: ${message}`);
    return body;
  }

  let admin; // a KeyClient on vault cmk as ci
  let diskKey; // key "disk" on vault cmk

  await group("ClientSecretCredential (authorityHost https://localhost:P, disableInstanceDiscovery) gets tokens for ci", async () => {
    const cred = ciCred();
    const t = await cred.getToken(`https://vault.localhost:${env.httpsPort}/.default`);
    const c = decodeJwt(t.token);
    assert.equal(c.oid, CI.objectId, "oid");
    assert.equal(c.appid, CI.clientId, "appid");
    assert.equal(c.tid, TENANT, "tid");
    assert.ok(t.expiresOnTimestamp > Date.now() + 60_000, "expires in the future");
    admin = keys("cmk", cred);
    diskKey = await admin.createRsaKey("disk", { keySize: 2048 });
    assert.equal(diskKey.name, "disk", "ci (access policy: all) creates a key on cmk");
    const wrong = new ClientSecretCredential(TENANT, CI.clientId, "wrong-secret", { authorityHost: authority, disableInstanceDiscovery: true });
    let err;
    try {
      await wrong.getToken("https://vault.azure.net/.default");
    } catch (e) {
      err = e;
    }
    assert.ok(err, "a wrong secret gets no token");
    // @azure/identity turns msal's ServerError into AuthenticationRequiredError.
    assert.equal(err.name, "AuthenticationRequiredError", `a wrong secret: ${err.name}: ${err.message}`);
    assert.match(err.message, /invalid_client/, "the error names invalid_client");
    assert.match(err.message, /AADSTS7000215/, "the error carries Entra's code for an invalid secret");
  });

  await group("disk-service (user-assigned MI, access policy get/wrapKey/unwrapKey): get, wrap, unwrap; create/delete/purge/list refused 403", async () => {
    const cred = diskCred();
    const t = decodeJwt((await cred.getToken("https://vault.azure.net/.default")).token);
    assert.equal(t.oid, DISK.objectId, "the token is disk-service's");
    assert.equal(t.appid, DISK.clientId, "appid");
    const client = keys("cmk", cred);
    assert.equal((await client.getKey("disk")).id, diskKey.id, "get");
    const c = crypto(diskKey.id, cred);
    const dek = randomBytes(32);
    const since = rec.exchanges.length;
    const w = await c.wrapKey("RSA-OAEP-256", dek);
    assert.equal(rec.find(since, "POST", `${new URL(diskKey.id).pathname}/wrapkey`).length, 1,
      `wrapKey RSA-OAEP-256 reached the server (saw ${rec.describe(since)})`);
    assert.equal(w.keyID, diskKey.id, "wrap keyID");
    sameBytes((await c.unwrapKey("RSA-OAEP-256", w.result)).result, dek, "unwrap");

    await refused(client.createRsaKey("x", { keySize: 2048 }), "AccessDenied", "create");
    await refused(client.beginDeleteKey("disk"), "AccessDenied", "delete");
    await refused(client.purgeDeletedKey("disk"), "AccessDenied", "purge");
    await refused((async () => { for await (const p of client.listPropertiesOfKeys()) void p; })(), "AccessDenied", "list", { paged: true });
    await refused(crypto(diskKey.id, cred).sign("RS256", randomBytes(32)), "AccessDenied", "sign (not granted)");
    assert.equal((await admin.getKey("disk")).id, diskKey.id, "nothing was deleted");
  });

  await group("RBAC: Crypto Officer (ci) at the vault, Crypto Service Encryption User (disk-service) at /keys/disk only", async () => {
    const officer = keys("rbac", ciCred());
    const k = await officer.createRsaKey("disk", { keySize: 2048 });
    const other = await officer.createRsaKey("other", { keySize: 2048 });
    const cred = diskCred();
    const c = crypto(k.id, cred);
    const dek = randomBytes(32);
    const w = await c.wrapKey("RSA-OAEP", dek);
    sameBytes((await c.unwrapKey("RSA-OAEP", w.result)).result, dek, "wrap/unwrap on the assigned key");
    const w2 = await c.wrapKey("RSA-OAEP-256", dek);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", w2.result)).result, dek, "server-side wrap/unwrap on the assigned key");
    const client = keys("rbac", cred);
    await refused(client.getKey("other"), "ForbiddenByRbac", "get of another key");
    await refused(crypto(other.id, cred).unwrapKey("RSA-OAEP", w.result), "ForbiddenByRbac", "unwrap with another key");
    await refused(client.createRsaKey("new", { keySize: 2048 }), "ForbiddenByRbac", "create");
    await refused(client.beginDeleteKey("disk"), "ForbiddenByRbac", "delete");
    await refused(crypto(k.id, cred).sign("RS256", randomBytes(32)), "ForbiddenByRbac", "sign (not in the role)");
    assert.equal((await officer.getKey("disk")).id, k.id, "the key is still there");
  });

  await group("an identity of another tenant (guest) is refused with 401 and a challenge", async () => {
    const cred = new ManagedIdentityCredential({ clientId: GUEST.clientId });
    const t = decodeJwt((await cred.getToken(`https://vault.localhost:${env.httpsPort}/.default`)).token);
    assert.equal(t.tid, OTHER_TENANT, "the guest's token names its own tenant");
    const since = rec.exchanges.length;
    await expectRestError(keys("cmk", cred).getKey("disk"), 401, undefined, "getKey as guest");
    const hits = rec.find(since, "GET", "/keys/disk/");
    assert.ok(hits.length >= 1 && hits.every((x) => x.status === 401), `GET /keys/disk/ answered 401 (saw ${rec.describe(since)})`);
  });

  await group("management plane (@azure/arm-keyvault as ci): create a vault with purge protection, get it, use it", async () => {
    const mgmt = arm(ciCred());
    const params = {
      location: "westeurope",
      tags: { team: "payments" },
      properties: {
        tenantId: TENANT,
        sku: { family: "A", name: "standard" },
        enableSoftDelete: true,
        softDeleteRetentionInDays: 7,
        enablePurgeProtection: true,
        accessPolicies: [
          { tenantId: TENANT, objectId: CI.objectId, permissions: ALL },
          { tenantId: TENANT, objectId: DISK.objectId, permissions: DISK_PERMS },
        ],
      },
    };
    const since = rec.exchanges.length;
    const made = await mgmt.vaults.beginCreateOrUpdateAndWait(RG, "made", params, { updateIntervalInMs: 100 });
    const puts = rec.find(since, "PUT", /\/vaults\/made$/);
    assert.equal(puts.length, 1, `one PUT .../vaults/made (saw ${rec.describe(since)})`);
    assert.ok([200, 201].includes(puts[0].status), `PUT status ${puts[0].status}`);
    assert.equal(JSON.parse(puts[0].body).properties?.provisioningState, "Succeeded", "provisioningState in the PUT answer");
    assert.equal(made.name, "made", "name");
    assert.equal(made.id, `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/made`, "id");
    assert.equal(made.properties.vaultUri, `https://made.vault.localhost:${env.httpsPort}/`, "vaultUri");
    assert.equal(made.properties.enablePurgeProtection, true, "enablePurgeProtection");
    assert.equal(made.properties.softDeleteRetentionInDays, 7, "softDeleteRetentionInDays");

    assert.equal(made.location, "westeurope", "location as created");
    const got = await mgmt.vaults.get(RG, "made");
    assert.equal(got.location, "westeurope", "vaults.get location: where it was made");
    assert.equal(got.properties.vaultUri, made.properties.vaultUri, "vaults.get vaultUri");
    assert.equal(got.properties.enablePurgeProtection, true, "vaults.get enablePurgeProtection");
    assert.equal(got.properties.tenantId, TENANT, "vaults.get tenantId");
    assert.deepEqual(got.tags, { team: "payments" }, "vaults.get tags as created");
    const policyOids = (got.properties.accessPolicies ?? []).map((p) => p.objectId).sort();
    assert.deepEqual(policyOids, [CI.objectId, DISK.objectId].sort(), "vaults.get access policies");

    const cmkVault = await mgmt.vaults.get(RG, "cmk");
    assert.equal(cmkVault.properties.vaultUri, `https://cmk.vault.localhost:${env.httpsPort}/`, "vaults.get of the configured vault cmk");
    assert.equal(cmkVault.location, "local", "a configured vault was made nowhere in particular");

    // The new vault answers at once, with its policies.
    const k = await keys("made", ciCred()).createEcKey("k", { curve: "P-256" });
    assert.equal(k.properties.recoveryLevel, "CustomizedRecoverable", "purge protection + 7 days");
    assert.equal(k.properties.recoverableDays, 7, "recoverableDays");
    const rk = await keys("made", ciCred()).createRsaKey("r", { keySize: 2048 });
    const c = crypto(rk.id, diskCred());
    const dek = randomBytes(32);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", (await c.wrapKey("RSA-OAEP-256", dek)).result)).result, dek,
      "disk-service wraps/unwraps on the new vault");

    // Purge protection cannot be turned off.
    const off = structuredClone(params);
    off.properties.enablePurgeProtection = false;
    await expectRestError(mgmt.vaults.beginCreateOrUpdateAndWait(RG, "made", off, { updateIntervalInMs: 100 }), 400, undefined,
      "turning purge protection off");
    assert.equal((await mgmt.vaults.get(RG, "made")).properties.enablePurgeProtection, true, "still on");

    // vaults.update is a PATCH: the tags it names replace the vault's, the rest stays.
    const patchSince = rec.exchanges.length;
    const patched = await mgmt.vaults.update(RG, "made", { tags: { team: "ledger", tier: "1" } });
    assert.equal(rec.find(patchSince, "PATCH", /\/vaults\/made$/).length, 1, `one PATCH (saw ${rec.describe(patchSince)})`);
    assert.deepEqual(patched.tags, { team: "ledger", tier: "1" }, "vaults.update tags");
    assert.equal(patched.properties.enablePurgeProtection, true, "vaults.update keeps purge protection");
    assert.deepEqual((await mgmt.vaults.get(RG, "made")).tags, { team: "ledger", tier: "1" }, "tags after the PATCH");
    const rbac = await mgmt.vaults.update(RG, "made", { properties: { enabledForDiskEncryption: true, enableRbacAuthorization: false } });
    assert.equal(rbac.properties.enableRbacAuthorization, false, "vaults.update of a property");
    assert.deepEqual(rbac.tags, { team: "ledger", tier: "1" }, "a PATCH without tags keeps them");
    // Soft delete's retention is set for good when the vault is made, as in Azure.
    await expectRestError(mgmt.vaults.update(RG, "made", { properties: { softDeleteRetentionInDays: 30 } }), 400, "BadRequest",
      "changing the retention");
    assert.equal((await mgmt.vaults.get(RG, "made")).properties.softDeleteRetentionInDays, 7, "retention unchanged");
  });

  await group("management plane: updateAccessPolicy remove -> disk-service's next unwrap 403; add -> works again", async () => {
    const mgmt = arm(ciCred());
    const cred = diskCred();
    const c = crypto(diskKey.id, cred);
    const dek = randomBytes(32);
    const wrapped = (await c.wrapKey("RSA-OAEP-256", dek)).result;
    sameBytes((await c.unwrapKey("RSA-OAEP-256", wrapped)).result, dek, "unwrap before the revocation");
    const entry = { tenantId: TENANT, objectId: DISK.objectId, permissions: DISK_PERMS };

    const removed = await mgmt.vaults.updateAccessPolicy(RG, "cmk", "remove", { properties: { accessPolicies: [entry] } });
    assert.ok(!(removed.properties?.accessPolicies ?? []).some((p) => p.objectId === DISK.objectId),
      `the answer no longer lists disk-service: ${JSON.stringify(removed)}`);
    const afterRemove = await mgmt.vaults.get(RG, "cmk");
    assert.deepEqual(afterRemove.properties.accessPolicies.map((p) => p.objectId), [CI.objectId], "vaults.get: only ci left");
    await refused(c.unwrapKey("RSA-OAEP-256", wrapped), "AccessDenied", "unwrap right after the revocation");

    const added = await mgmt.vaults.updateAccessPolicy(RG, "cmk", "add", { properties: { accessPolicies: [entry] } });
    assert.ok((added.properties?.accessPolicies ?? []).some((p) => p.objectId === DISK.objectId),
      `the answer lists disk-service again: ${JSON.stringify(added)}`);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", wrapped)).result, dek, "unwrap after the grant");
  });

  await group("management plane with @azure/arm-keyvault's default api-version and scope: vaults.get and updateAccessPolicy", async () => {
    // @azure/arm-keyvault 5.0.0 sends api-version=2026-02-01 unless told otherwise.
    const mgmt = arm(ciCred(), null);
    const since = rec.exchanges.length;
    let got;
    try {
      got = await mgmt.vaults.get(RG, "cmk");
    } finally {
      const x = rec.exchanges.slice(since).find((e) => e.method === "GET");
      if (x) console.log(`     [authz] GET ${x.url.pathname}${x.url.search} -> ${x.status} ${x.body.slice(0, 300)}`);
    }
    const sent = rec.exchanges.slice(since).find((e) => e.method === "GET");
    assert.equal(sent.url.searchParams.get("api-version"), "2026-02-01", "the SDK's own api-version");
    // the token it asked for: the endpoint's own audience
    const tok = await ciCred().getToken(`${authority}/.default`);
    assert.equal(decodeJwt(tok.token).aud, authority, "audience");
    assert.equal(got.properties.vaultUri, `https://cmk.vault.localhost:${env.httpsPort}/`, "vaultUri");
    const entry = { tenantId: TENANT, objectId: DISK.objectId, permissions: DISK_PERMS };
    const added = await mgmt.vaults.updateAccessPolicy(RG, "cmk", "add", { properties: { accessPolicies: [entry] } });
    assert.ok(added.properties.accessPolicies.some((p) => p.objectId === DISK.objectId), "add answers the policies");
  });

  await group("management plane keys: keys.createIfNotExist, get, getVersion, list, listVersions (@azure/arm-keyvault)", async () => {
    const mgmt = arm(ciCred());
    const made = await mgmt.keys.createIfNotExist(RG, "made", "armk",
      { properties: { kty: "EC", curveName: "P-256", keyOps: ["sign", "verify"] }, tags: { purpose: "arm" } });
    assert.equal(made.kty, "EC", "kty");
    assert.equal(made.curveName, "P-256", "curveName");
    assert.deepEqual(made.keyOps, ["sign", "verify"], "keyOps");
    assert.deepEqual(made.tags, { purpose: "arm" }, "tags");
    assert.equal(made.keyUri, `https://made.vault.localhost:${env.httpsPort}/keys/armk`, "keyUri");
    const again = await mgmt.keys.createIfNotExist(RG, "made", "armk", { properties: { kty: "RSA" } });
    assert.equal(again.keyUriWithVersion, made.keyUriWithVersion, "a second create answers the same version");
    assert.equal(again.kty, "EC", "and changes nothing");
    // the data plane's own key
    const dataKey = await keys("made", ciCred()).getKey("armk");
    assert.equal(dataKey.id, made.keyUriWithVersion, "the data plane has it");
    const version = made.keyUriWithVersion.split("/").pop();
    assert.equal((await mgmt.keys.getVersion(RG, "made", "armk", version)).name, version, "getVersion");
    assert.equal((await mgmt.keys.get(RG, "made", "armk")).keyUriWithVersion, made.keyUriWithVersion, "get");
    const all = [];
    for await (const k of mgmt.keys.list(RG, "made")) all.push(k.name);
    assert.ok(all.includes("armk"), `keys.list: ${JSON.stringify(all)}`);
    const versions = [];
    for await (const v of mgmt.keys.listVersions(RG, "made", "armk")) versions.push(v.name);
    assert.deepEqual(versions, [version], "listVersions");
    await expectRestError(mgmt.keys.createIfNotExist(RG, "made", "bad", { properties: { kty: "oct" } }), 400, "BadRequest",
      "an oct key in a vault");
  });

  await group("vault firewall (@azure/arm-keyvault networkAcls, publicNetworkAccess): the data plane refuses 403 ForbiddenByFirewall / ForbiddenByConnection", async () => {
    const mgmt = arm(ciCred());
    const FW_RG = "js-fw";
    const name = "jsfirewall";
    const ipValues = (v) => (v.properties.networkAcls?.ipRules ?? []).map((r) => r.value).sort();
    const made = await mgmt.vaults.beginCreateOrUpdateAndWait(FW_RG, name, {
      location: "westeurope",
      properties: {
        tenantId: TENANT,
        sku: { family: "A", name: "premium" },
        enabledForDiskEncryption: true,
        networkAcls: { defaultAction: "Deny", bypass: "AzureServices", ipRules: [{ value: "203.0.113.7" }] },
        accessPolicies: [{ tenantId: TENANT, objectId: CI.objectId, permissions: ALL }],
      },
    }, { updateIntervalInMs: 100 });
    for (const [v, what] of [[made, "the PUT's answer"], [await mgmt.vaults.get(FW_RG, name), "vaults.get"]]) {
      assert.deepEqual(ipValues(v), ["203.0.113.7/32"], `${what}: ipRules in canonical form`);
      assert.equal(v.properties.networkAcls?.defaultAction, "Deny", `${what}: defaultAction`);
      assert.equal(v.properties.networkAcls?.bypass, "AzureServices", `${what}: bypass`);
      assert.equal(v.properties.sku?.name, "premium", `${what}: sku.name`);
      assert.equal(v.properties.enabledForDiskEncryption, true, `${what}: enabledForDiskEncryption`);
      assert.equal(v.properties.publicNetworkAccess, "Enabled", `${what}: publicNetworkAccess`);
    }

    // 127.0.0.1 (or ::1) is in no rule: refused before the access policy (all keys) is read
    const client = keys(name, ciCred());
    const since = rec.exchanges.length;
    const body = await refused(client.createRsaKey("refused", { keySize: 2048 }), "ForbiddenByFirewall",
      "create from an address in no ipRule", { oid: CI.objectId });
    assert.equal(rec.find(since, "POST", "/keys/refused/create").at(-1)?.status, 403,
      `the create reached the server and was answered 403 (saw ${rec.describe(since)})`);
    const message = body.error?.message ?? "";
    assert.ok(message.includes("Client address is not authorized"), `the firewall's message: ${message}`);
    assert.match(message, /\r\nClient address: (127\.0\.0\.1|::1)\r\n/, "the message names the client's address");
    assert.ok(message.includes(`\r\nVault: ${name};location=westeurope`), `the message names the vault: ${message}`);

    // vaults.update with networkAcls replaces the rule set: loopback is let in
    const opened = await mgmt.vaults.update(FW_RG, name, { properties: {
      networkAcls: { defaultAction: "Deny", ipRules: [{ value: "127.0.0.0/8" }, { value: "::1/128" }] },
    } });
    assert.deepEqual(ipValues(opened), ["127.0.0.0/8", "::1/128"].sort(), "vaults.update: the PATCH's rules replace the old");
    assert.equal(opened.properties.networkAcls?.defaultAction, "Deny", "vaults.update: defaultAction");
    assert.equal(opened.properties.sku?.name, "premium", "vaults.update keeps the sku");
    assert.equal(opened.id, `/subscriptions/${SUBSCRIPTION}/resourceGroups/${FW_RG}/providers/Microsoft.KeyVault/vaults/${name}`,
      "vaults.update answers the vault in its own group");
    const allowed = await client.createRsaKey("allowed", { keySize: 2048 });
    assert.equal(allowed.name, "allowed", "create from loopback once it is in an ipRule");
    assert.equal((await client.getKey("allowed")).id, allowed.id, "get from loopback");
    await expectRestError(client.getKey("refused"), 404, "KeyNotFound", "the refused create made nothing");

    // publicNetworkAccess Disabled refuses every address; a PATCH without networkAcls keeps them
    const closed = await mgmt.vaults.update(FW_RG, name, { properties: { publicNetworkAccess: "Disabled" } });
    assert.equal(closed.properties.publicNetworkAccess, "Disabled", "vaults.update: publicNetworkAccess");
    const shut = await refused(client.getKey("allowed"), "ForbiddenByConnection", "get with public network access disabled",
      { oid: CI.objectId });
    assert.ok(!(shut.error?.message ?? "").includes("Client address is not authorized"),
      `not the ipRules' refusal: ${shut.error?.message}`);
    const after = await mgmt.vaults.get(FW_RG, name);
    assert.equal(after.id, `/subscriptions/${SUBSCRIPTION}/resourceGroups/${FW_RG}/providers/Microsoft.KeyVault/vaults/${name}`,
      "vaults.get: still in its group");
    assert.equal(after.properties.publicNetworkAccess, "Disabled", "vaults.get: publicNetworkAccess");
    assert.deepEqual(ipValues(after), ["127.0.0.0/8", "::1/128"].sort(), "vaults.get: the ipRules kept by a PATCH without networkAcls");
    assert.equal(after.properties.networkAcls?.defaultAction, "Deny", "vaults.get: defaultAction kept");

    // the management plane is no part of the vault's firewall
    await mgmt.vaults.delete(FW_RG, name);
    await expectRestError(mgmt.vaults.get(FW_RG, name), 404, "ResourceNotFound", "vaults.get after the delete");
  });

  await group("management plane lists: vaults.list (generic resources), listBySubscription, listByResourceGroup", async () => {
    const mgmt = arm(ciCred());
    const all = async (it) => { const out = []; for await (const v of it) out.push(v); return out; };
    const listed = await all(mgmt.vaults.list());
    const cmk = listed.find((v) => v.name === "cmk");
    assert.ok(cmk, `vaults.list names cmk: ${JSON.stringify(listed.map((v) => v.name))}`);
    assert.equal(cmk.type, "Microsoft.KeyVault/vaults", "vaults.list type");
    assert.equal(cmk.id, `/subscriptions/${SUBSCRIPTION}/resourceGroups/kvmock/providers/Microsoft.KeyVault/vaults/cmk`, "vaults.list id");
    // the client's own default api-version goes to /resources too
    assert.ok((await all(arm(ciCred(), null).vaults.list())).some((v) => v.name === "cmk"),
      "vaults.list with the SDK's default api-version");
    const bySub = await all(mgmt.vaults.listBySubscription());
    assert.equal(bySub.find((v) => v.name === "cmk")?.properties.vaultUri,
      `https://cmk.vault.localhost:${env.httpsPort}/`, "listBySubscription gives whole vaults");
    // the configuration file's vaults are in kvmock's own group; the others in theirs
    const inKvmock = await all(mgmt.vaults.listByResourceGroup("kvmock"));
    assert.ok(inKvmock.some((v) => v.id === `/subscriptions/${SUBSCRIPTION}/resourceGroups/kvmock/providers/Microsoft.KeyVault/vaults/cmk`),
      `listByResourceGroup(kvmock) lists cmk: ${JSON.stringify(inKvmock.map((v) => v.id))}`);
    const byGroup = await all(mgmt.vaults.listByResourceGroup(RG));
    assert.ok(!byGroup.some((v) => v.name === "cmk"), "cmk is not in group rg");
    assert.ok(byGroup.every((v) => v.id.startsWith(`/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/`)),
      `listByResourceGroup(rg) ids are in rg: ${JSON.stringify(byGroup.map((v) => v.id))}`);
    await expectRestError(all(arm(diskCred()).vaults.list()), 403, "AuthorizationFailed", "vaults.list as disk-service");
  });

  await group("management plane refuses an identity without manage (disk-service): 403 AuthorizationFailed", async () => {
    const mgmt = arm(diskCred());
    await expectRestError(mgmt.vaults.get(RG, "cmk"), 403, "AuthorizationFailed", "vaults.get as disk-service");
  });

  await group("RBAC through @azure/arm-authorization: a role found by name, assigned at a key, listed, refused twice, removed", async () => {
    const authz = new AuthorizationManagementClient(ciCred(), SUBSCRIPTION, rec.options({
      endpoint: authority, credentialScopes: ["https://management.azure.com/.default"],
    }));
    const found = [];
    for await (const d of authz.roleDefinitions.list(`/subscriptions/${SUBSCRIPTION}`,
      { filter: "roleName eq 'Key Vault Crypto Service Encryption User'" })) found.push(d);
    assert.equal(found.length, 1, "one role of that name");
    assert.equal(found[0].name, "e147488a-f6f5-4113-8e2d-b22465e65bf6", "its id");
    assert.equal(found[0].roleType, "BuiltInRole", "built in");
    assert.deepEqual(found[0].permissions[0].dataActions, ["Microsoft.KeyVault/vaults/keys/read",
      "Microsoft.KeyVault/vaults/keys/wrap/action", "Microsoft.KeyVault/vaults/keys/unwrap/action"], "its data actions");

    const key = await keys("rbac", ciCred()).createRsaKey("js-arm-authz", { keySize: 2048 });
    const scope = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/rbac/keys/js-arm-authz`;
    const disk = crypto(key.id, diskCred());
    await refused(disk.wrapKey("RSA-OAEP-256", randomBytes(32)), "ForbiddenByRbac", "wrap before the assignment");
    const body = { roleDefinitionId: found[0].id, principalId: DISK.objectId, principalType: "ServicePrincipal" };
    const name = "6a7b8c9d-0000-4000-8000-00000000a001";
    const made = await authz.roleAssignments.create(scope, name, body);
    assert.equal(made.scope, scope, "scope");
    assert.equal(made.principalId, DISK.objectId, "principalId");
    const dek = randomBytes(32);
    sameBytes((await disk.unwrapKey("RSA-OAEP-256", (await disk.wrapKey("RSA-OAEP-256", dek)).result)).result, dek,
      "disk-service wraps and unwraps under its new role");

    await expectRestError(authz.roleAssignments.create(scope, "6a7b8c9d-0000-4000-8000-00000000a002", body),
      409, "RoleAssignmentExists", "the same assignment under a second name");
    const listed = [];
    for await (const a of authz.roleAssignments.listForScope(scope, { filter: "atScope()" })) listed.push(a);
    // at the key's scope and above: ci's Crypto Officer at the vault and the new one
    // (disk-service's role at key "disk" is beside it, not above)
    assert.deepEqual(listed.map((a) => `${a.principalId} ${a.scope.split("/vaults/")[1]}`).sort(),
      [`${CI.objectId} rbac`, `${DISK.objectId} rbac/keys/js-arm-authz`],
      "listForScope(atScope()) shows the assignments at the key and above");
    await authz.roleAssignments.delete(scope, name);
    await refused(disk.wrapKey("RSA-OAEP-256", dek), "ForbiddenByRbac", "wrap after the assignment was deleted");
  });

  await group("resource groups through @azure/arm-resources 8.0.0 (api-version 2025-04-01): create, get, list, exists, delete with its vault", async () => {
    const rm = new ResourceManagementClient(ciCred(), SUBSCRIPTION, rec.options({ endpoint: authority }));
    const since = rec.exchanges.length;
    const made = await rm.resourceGroups.createOrUpdate("js-rg", { location: "northeurope", tags: { team: "js" } });
    assert.deepEqual([made.name, made.location, made.tags], ["js-rg", "northeurope", { team: "js" }], "created");
    assert.equal(rec.find(since, "PUT", /\/resourcegroups\/js-rg$/i)[0].url.searchParams.get("api-version"),
      "2025-04-01", "the SDK's own api-version");
    assert.equal((await rm.resourceGroups.get("js-rg")).location, "northeurope", "get");
    const names = [];
    for await (const g of rm.resourceGroups.list()) names.push(g.name);
    assert.ok(names.includes("js-rg"), `listed: ${names}`);
    assert.equal((await rm.resourceGroups.checkExistence("js-rg")).body, true, "exists");
    // a vault in it goes with it (soft delete)
    const mgmt = arm(ciCred());
    await mgmt.vaults.beginCreateOrUpdateAndWait("js-rg", "jsrgvault", {
      location: "northeurope",
      properties: { tenantId: TENANT, sku: { family: "A", name: "standard" }, accessPolicies: [] },
    }, { updateIntervalInMs: 100 });
    await rm.resourceGroups.delete("js-rg", { updateIntervalInMs: 100 });
    assert.equal((await rm.resourceGroups.checkExistence("js-rg")).body, false, "gone");
    const deleted = await mgmt.vaults.getDeleted("jsrgvault", "northeurope");
    assert.equal(deleted.name, "jsrgvault", "its vault is soft-deleted");
  });

  await group("management plane soft delete: vaults.delete, getDeleted, listDeleted, recover (createMode recover), beginPurgeDeletedAndWait", async () => {
    const mgmt = arm(ciCred());
    const params = (extra = {}) => ({
      location: "westeurope",
      properties: {
        tenantId: TENANT,
        sku: { family: "A", name: "standard" },
        softDeleteRetentionInDays: 7,
        accessPolicies: [{ tenantId: TENANT, objectId: CI.objectId, permissions: ALL }],
        ...extra,
      },
    });
    const deletedNames = async () => {
      const names = [];
      for await (const v of mgmt.vaults.listDeleted()) names.push(v.name);
      return names;
    };
    await mgmt.vaults.beginCreateOrUpdateAndWait(RG, "gone", params(), { updateIntervalInMs: 100 });
    const key = await keys("gone", ciCred()).createRsaKey("k", { keySize: 2048 });
    const dek = randomBytes(32);
    const wrapped = (await crypto(key.id, ciCred()).wrapKey("RSA-OAEP-256", dek)).result;

    await mgmt.vaults.delete(RG, "gone");
    await expectRestError(keys("gone", ciCred()).getKey("k"), 404, "VaultNotFound", "the deleted vault's host");
    await expectRestError(mgmt.vaults.get(RG, "gone"), 404, "ResourceNotFound", "vaults.get of a deleted vault");

    const d = await mgmt.vaults.getDeleted("gone", "westeurope");
    assert.equal(d.name, "gone", "getDeleted name");
    assert.equal(d.type, "Microsoft.KeyVault/deletedVaults", "getDeleted type");
    assert.equal(d.id, `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/gone`, "getDeleted id");
    assert.equal(d.properties.vaultId, `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/gone`, "vaultId");
    assert.equal(d.properties.location, "westeurope", "location");
    assert.equal(d.properties.purgeProtectionEnabled, false, "purgeProtectionEnabled");
    assert.ok(d.properties.deletionDate instanceof Date, "deletionDate is a date");
    assert.equal(d.properties.scheduledPurgeDate - d.properties.deletionDate, 7 * DAY * 1000, "scheduledPurgeDate = deletion + 7 days");
    assert.ok((await deletedNames()).includes("gone"), "listDeleted");

    const conflict = await expectRestError(mgmt.vaults.beginCreateOrUpdateAndWait(RG, "gone", params(), { updateIntervalInMs: 100 }),
      409, "ConflictError", "creating over a deleted vault");
    assert.match(conflict.message, /already exists in deleted state/, "the service's message");
    await expectRestError(mgmt.vaults.beginCreateOrUpdateAndWait(RG, "never", params({ createMode: "recover" }), { updateIntervalInMs: 100 }),
      400, "SoftDeletedVaultDoesNotExist", "recovering a vault that was never deleted");

    const back = await mgmt.vaults.beginCreateOrUpdateAndWait(RG, "gone", params({ createMode: "recover" }), { updateIntervalInMs: 100 });
    assert.equal(back.name, "gone", "recovered");
    assert.equal(back.properties.vaultUri, `https://gone.vault.localhost:${env.httpsPort}/`, "vaultUri");
    sameBytes((await crypto(key.id, ciCred()).unwrapKey("RSA-OAEP-256", wrapped)).result, dek, "the key is back and unwraps");
    assert.ok(!(await deletedNames()).includes("gone"), "no longer listed as deleted");

    await mgmt.vaults.delete(RG, "gone");
    const since = rec.exchanges.length;
    await mgmt.vaults.beginPurgeDeletedAndWait("gone", "westeurope", { updateIntervalInMs: 100 });
    const posts = rec.find(since, "POST", /\/deletedVaults\/gone\/purge$/);
    assert.equal(posts.length, 1, `one POST .../purge (saw ${rec.describe(since)})`);
    await expectRestError(mgmt.vaults.getDeleted("gone", "westeurope"), 404, "ResourceNotFound", "getDeleted after the purge");
    await mgmt.vaults.beginCreateOrUpdateAndWait(RG, "gone", params(), { updateIntervalInMs: 100 });
    await expectRestError(keys("gone", ciCred()).getKey("k"), 404, "KeyNotFound", "the purged vault's key stays gone");

    // "made" (previous group) has purge protection: purge is refused until its date.
    await mgmt.vaults.delete(RG, "made");
    const pp = await mgmt.vaults.getDeleted("made", "westeurope");
    assert.equal(pp.properties.purgeProtectionEnabled, true, "purgeProtectionEnabled");
    await expectRestError(mgmt.vaults.beginPurgeDeletedAndWait("made", "westeurope", { updateIntervalInMs: 100 }),
      405, "MethodNotAllowed", "purge under purge protection");
    await advanceClock(env, 7 * DAY + 60);
    // kvmock's clock moved a week: a new credential gets a token that is valid on it
    const later = arm(ciCred());
    await expectRestError(later.vaults.getDeleted("made", "westeurope"), 404, "ResourceNotFound",
      "purged by the scheduled purge once its date passed");
  });

  return summary();
}
