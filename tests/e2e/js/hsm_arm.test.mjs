#!/usr/bin/env node
// Managed HSMs made, changed, deleted, recovered and purged through Resource
// Manager with the official @azure/arm-keyvault (KeyVaultManagementClient's
// managedHsms, as an identity with "manage"), and used through the official
// @azure/keyvault-keys:
//   - beginCreateOrUpdateAndWait of a new HSM in a new group (sku, tags,
//     initialAdminObjectIds, retention 7, purge protection not given): one PUT
//     answered 200 (never 201), the HSM with hsmUri, provisioningState
//     "Succeeded", enablePurgeProtection true (the REST specification's
//     default), the sku, the tags, its administrators, an active security
//     domain and systemData naming the caller; get answers the same (a name
//     in any case); listByResourceGroup and listBySubscription list it;
//     checkMhsmNameAvailability: AlreadyExists for it and for a vault's name,
//     nameAvailable for a free name, AccountNameInvalid for "a--b";
//   - its data plane at https://NAME.managedhsm.localhost:P: its
//     administrators' Managed HSM Administrator assignments at "/", the
//     administrator's Crypto User assignment at /keys (raw HTTPS, as
//     managed_hsm.test.mjs), the assigned identity's RSA key (RSA-HSM,
//     CustomizedRecoverable: purge protection is on) and wrap/unwrap with
//     CryptographyClient;
//   - beginUpdateAndWait (a PATCH of the tags alone): answered, kept, the rest
//     unchanged;
//   - refusals as RestError with kvmock's status and code: no
//     initialAdminObjectIds or an empty list, no location, a sku of the wrong
//     family, retention 5, enableSoftDelete false, a bad name (400); a live
//     vault's name and an HSM of another group (409 Conflict); purge
//     protection turned off by PUT or PATCH and retention changed (400, the
//     HSM unchanged); a PATCH of no HSM (404); an identity without "manage"
//     (403 AuthorizationFailed);
//   - beginDeleteAndWait: one DELETE 200 with no body; get 404
//     ResourceNotFound; no longer listed; listDeleted and getDeleted give the
//     deleted HSM (id, type, mhsmId, location, deletionDate, scheduledPurgeDate
//     7 days later, purgeProtectionEnabled, tags), vaults.listDeleted does not;
//     its host answers 404 as an unknown HSM's does; its name is still taken
//     (AlreadyExists, and a create over it is 409 ConflictError); a recover of
//     an HSM never deleted is 400 SoftDeletedVaultDoesNotExist;
//   - recovery by beginCreateOrUpdateAndWait with createMode "recover": the
//     HSM, its settings and administrators, its role assignments and its key
//     are back (the key unwraps what it wrapped before);
//   - an HSM made with enablePurgeProtection false: deleted, then
//     beginPurgeDeletedAndWait completes on kvmock's 202 without a Location
//     header (one POST, nothing polled); getDeleted 404, not listed, the name
//     available; an HSM made again under that name has only its new
//     administrator's assignment and no key; purging an HSM with purge
//     protection is 405 MethodNotAllowed, one never deleted 404.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/hsm_arm.test.mjs --kvmock build/kvmock
//
// The script is both the driver (starts kvmock with a config file, stops it
// and checks a clean exit) and, with --child, the scenario (see helpers.mjs).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { fileURLToPath } from "node:url";
import {
  DAY, errorBody, expectRestError, isChild, makeRecorder, makeReporter, runDriver, runScenario, sameBytes,
  scenarioEnv,
} from "./helpers.mjs";

const TENANT = "6b766d6f-636b-4000-8000-000000000001";
// Resource Manager's caller: "manage", no secret (so its systemData type is ManagedIdentity).
const OPS = { name: "ops", objectId: "0a000000-0000-4000-8000-0000000000b1", clientId: "0c000000-0000-4000-8000-0000000000b1", manage: true, default: true };
const ADMIN = { name: "hsm-admin", objectId: "0a000000-0000-4000-8000-0000000000a1", clientId: "0c000000-0000-4000-8000-0000000000a1" };
const USER = { name: "hsm-user", objectId: "0a000000-0000-4000-8000-0000000000a2", clientId: "0c000000-0000-4000-8000-0000000000a2" };
const SECOND_ADMIN = "0a000000-0000-4000-8000-0000000000a3"; // an object id only
const VAULT = "jstaken"; // a vault of the configuration file (group kvmock)
const CFG_HSM = "jscfghsm"; // an HSM of the configuration file (group kvmock)
const CONFIG = {
  tenantId: TENANT,
  identities: [OPS, ADMIN, USER],
  vaults: [{ name: VAULT, properties: { accessPolicies: [] } }],
  managedHsms: [{ name: CFG_HSM, properties: { initialAdminObjectIds: [ADMIN.objectId] } }],
};
const SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";
const RG = "js-hsm-rg"; // made by the first PUT
const LOCATION = "westeurope";
const HSM = "jshsm1"; // purge protection on (the default)
const HSM2 = "jshsm-nopp"; // purge protection off
const ARM_API_VERSION = "2023-07-01";
const HSM_RESOURCE = "https://managedhsm.azure.net";
const HSM_API_VERSION = "7.6"; // of the raw access control calls
const DEF_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/";
const RA_PATH = "/providers/Microsoft.Authorization/roleAssignments";
const CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b";
const ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4";
// kvmock's role assignment names are unique across all its HSMs: one name per HSM
const ASSIGNMENT = { [HSM]: "5e1f0000-0000-4000-8000-0000000000d1", [HSM2]: "5e1f0000-0000-4000-8000-0000000000d2" };
const LRO = { updateIntervalInMs: 100 };

if (!isChild()) {
  await runDriver({ script: fileURLToPath(import.meta.url), config: CONFIG });
} else {
  runScenario("[hsm_arm]", scenario);
}

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");
  const { KeyVaultManagementClient } = await import("@azure/arm-keyvault");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[hsm_arm]");
  const ca = readFileSync(env.caPath);
  const mi = (id) => new ManagedIdentityCredential({ clientId: id.clientId });

  // Every Resource Manager response's Location header, beside the recorder.
  const locations = [];
  const locationPolicy = {
    name: "kvmockTestLocation",
    async sendRequest(request, next) {
      const response = await next(request);
      locations.push({ method: request.method, path: new URL(request.url).pathname, location: response.headers.get("location") });
      return response;
    },
  };
  // As authz.test.mjs: no scope given, the client asks for "{endpoint}/.default".
  // apiVersion null: the SDK's own default (2026-02-01 in 5.0.0).
  const arm = (id = OPS, apiVersion = ARM_API_VERSION) => {
    const options = rec.options({ endpoint: env.localhostUrl, ...(apiVersion ? { apiVersion } : {}) });
    options.additionalPolicies.push({ policy: locationPolicy, position: "perCall" });
    return new KeyVaultManagementClient(mi(id), SUBSCRIPTION, options);
  };
  const mgmt = arm();
  const hsms = mgmt.managedHsms;

  const hsmUrl = (name) => `https://${name}.managedhsm.localhost:${env.httpsPort}`;
  const armId = (rg, name) => `/subscriptions/${SUBSCRIPTION}/resourceGroups/${rg}/providers/Microsoft.KeyVault/managedHSMs/${name}`;
  const armPath = (name) => armId(RG, name);
  const deletedId = (name) => `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.KeyVault/locations/${LOCATION}/deletedManagedHSMs/${name}`;
  const all = async (it) => { const out = []; for await (const x of it) out.push(x); return out; };
  const names = async (it) => (await all(it)).map((x) => x.name);
  const userKeys = (name) => new KeyClient(hsmUrl(name), mi(USER), rec.options());
  const userCrypto = (kid) => new CryptographyClient(kid, mi(USER), rec.options());

  /** Body of a new HSM: location, sku, tags, properties (extra properties merged in). */
  const params = (props = {}, top = {}) => ({
    location: LOCATION,
    sku: { family: "B", name: "Standard_B1" },
    tags: { team: "payments", env: "test" },
    properties: {
      tenantId: TENANT,
      initialAdminObjectIds: [ADMIN.objectId, SECOND_ADMIN],
      softDeleteRetentionInDays: 7,
      ...props,
    },
    ...top,
  });

  /** The single recorded exchange since `since` with this method and path; it must have `status`. */
  function one(since, method, path, status) {
    const hits = rec.find(since, method, path);
    assert.equal(hits.length, 1, `one ${method} ${path} (saw ${rec.describe(since)})`);
    assert.equal(hits[0].status, status, `${method} ${path}: status (body ${hits[0].body})`);
    return hits[0];
  }

  // The administrator's bearer token for the raw access control calls.
  const adminToken = (await mi(ADMIN).getToken(`${HSM_RESOURCE}/.default`)).token;

  /** One raw HTTPS call to HSM `name` as the administrator; resolves {status, text, json}. */
  function hsmCall(name, method, path, body) {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const url = new URL(`${hsmUrl(name)}${path}?api-version=${HSM_API_VERSION}`);
    const headers = { Authorization: `Bearer ${adminToken}`, Accept: "application/json" };
    if (data) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": String(data.length) });
    return new Promise((resolvePromise, reject) => {
      const req = https.request(url, { method, headers, ca, agent: false, timeout: 30_000 }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = JSON.parse(text);
          } catch { /* left undefined */ }
          resolvePromise({ status: res.statusCode, text, json });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
      req.on("error", reject);
      req.end(data);
    });
  }

  /** HSM `name`'s role assignments at "/" as [principalId, role guid, scope], sorted. */
  async function assignments(name) {
    const r = await hsmCall(name, "GET", RA_PATH);
    assert.equal(r.status, 200, `GET ${hsmUrl(name)}${RA_PATH}: status (body ${r.text})`);
    assert.ok(Array.isArray(r.json?.value), `GET ${RA_PATH}: {"value":[...]} (body ${r.text})`);
    return r.json.value.map((a) => [a.properties?.principalId, a.properties?.roleDefinitionId?.replace(DEF_PREFIX, ""), a.properties?.scope]).sort();
  }

  /** The administrator gives USER "Managed HSM Crypto User" at /keys of HSM `name` (201). */
  async function assignCryptoUser(name) {
    const r = await hsmCall(name, "PUT", `/keys${RA_PATH}/${ASSIGNMENT[name]}`,
      { properties: { roleDefinitionId: `${DEF_PREFIX}${CRYPTO_USER}`, principalId: USER.objectId } });
    assert.equal(r.status, 201, `PUT /keys${RA_PATH}/${ASSIGNMENT[name]} on ${name}: status (body ${r.text})`);
    assert.deepEqual([r.json?.properties?.principalId, r.json?.properties?.scope, r.json?.properties?.roleDefinitionId],
      [USER.objectId, "/keys", `${DEF_PREFIX}${CRYPTO_USER}`], `the assignment on ${name} (body ${r.text})`);
  }

  /** A refused create/update: RestError `status` `code`, and the recorded body's error.code agrees. */
  async function refused(promise, status, code, what) {
    const err = await expectRestError(promise, status, code, what);
    assert.equal(errorBody(err, rec).error?.code, code, `${what}: error.code in the body`);
    assert.ok(typeof err.message === "string" && err.message.length > 0, `${what}: a message`);
    return err;
  }

  const sorted = (a) => [...(a ?? [])].sort();
  let made; // the ManagedHsm the first create answered
  let key; // USER's RSA key on HSM
  let dek; // what the key wrapped
  let wrapped;

  await group(`beginCreateOrUpdateAndWait(${RG}, ${HSM}): one PUT answered 200, the HSM as asked; get; listByResourceGroup; listBySubscription`, async () => {
    const since = rec.exchanges.length;
    const t0 = Date.now();
    made = await hsms.beginCreateOrUpdateAndWait(RG, HSM, params(), LRO);
    const put = one(since, "PUT", armPath(HSM), 200);
    assert.equal(JSON.parse(put.requestBody).properties?.enablePurgeProtection, undefined, "the SDK sent no enablePurgeProtection");
    assert.equal(JSON.parse(put.body).properties?.provisioningState, "Succeeded", "provisioningState in the PUT's answer");

    assert.equal(made.id, armPath(HSM), "id");
    assert.equal(made.name, HSM, "name");
    assert.equal(made.type, "Microsoft.KeyVault/managedHSMs", "type");
    assert.equal(made.location, LOCATION, "location");
    assert.deepEqual(made.sku, { family: "B", name: "Standard_B1" }, "sku");
    assert.deepEqual(made.tags, { team: "payments", env: "test" }, "tags");
    const p = made.properties;
    assert.equal(p.hsmUri, `${hsmUrl(HSM)}/`, "hsmUri");
    assert.equal(p.provisioningState, "Succeeded", "provisioningState");
    assert.equal(p.tenantId, TENANT, "tenantId");
    assert.equal(p.enablePurgeProtection, true, "enablePurgeProtection: true when not given");
    assert.equal(p.enableSoftDelete, true, "enableSoftDelete");
    assert.equal(p.softDeleteRetentionInDays, 7, "softDeleteRetentionInDays");
    assert.deepEqual(sorted(p.initialAdminObjectIds), sorted([ADMIN.objectId, SECOND_ADMIN]), "initialAdminObjectIds");
    assert.equal(p.securityDomainProperties?.activationStatus, "Active", "securityDomainProperties.activationStatus");
    assert.equal(p.publicNetworkAccess, "Enabled", "publicNetworkAccess");
    const sd = made.systemData;
    assert.equal(sd?.createdBy, OPS.clientId, "systemData.createdBy: the caller's appid");
    assert.equal(sd?.createdByType, "ManagedIdentity", "systemData.createdByType");
    assert.equal(sd?.lastModifiedBy, OPS.clientId, "systemData.lastModifiedBy");
    assert.equal(sd?.lastModifiedByType, "ManagedIdentity", "systemData.lastModifiedByType");
    assert.ok(sd?.createdAt instanceof Date && Math.abs(sd.createdAt - t0) < 120_000, `systemData.createdAt is now: ${sd?.createdAt}`);
    assert.ok(sd?.lastModifiedAt instanceof Date, "systemData.lastModifiedAt");

    assert.deepEqual(await hsms.get(RG, HSM), made, "get answers what the PUT answered");
    assert.equal((await hsms.get(RG, HSM.toUpperCase())).name, HSM, "get of the name in upper case: the HSM, named in lower case");
    assert.equal((await arm(OPS, null).managedHsms.get(RG, HSM)).properties.hsmUri, p.hsmUri, "get with the SDK's default api-version");

    const inGroup = await all(hsms.listByResourceGroup(RG));
    assert.deepEqual(inGroup.map((h) => h.name), [HSM], `listByResourceGroup(${RG}): the new HSM alone`);
    assert.deepEqual(inGroup[0], made, "listByResourceGroup gives the whole HSM");
    const bySub = await all(hsms.listBySubscription());
    const subNames = bySub.map((h) => h.name);
    assert.ok(subNames.includes(HSM) && subNames.includes(CFG_HSM), `listBySubscription: both HSMs: ${subNames}`);
    assert.ok(!subNames.includes(VAULT), `listBySubscription: no vault: ${subNames}`);
    assert.deepEqual(bySub.find((h) => h.name === HSM), made, "listBySubscription gives the whole HSM");
    assert.equal(bySub.find((h) => h.name === CFG_HSM).id, armId("kvmock", CFG_HSM), "the configured HSM is in group kvmock");
    assert.ok(!(await names(hsms.listByResourceGroup("kvmock"))).includes(HSM), "not in group kvmock");
  });

  await group("checkMhsmNameAvailability: AlreadyExists for the HSM and a vault, nameAvailable for a free name, AccountNameInvalid for a--b", async () => {
    const taken = await hsms.checkMhsmNameAvailability({ name: HSM });
    assert.equal(taken.nameAvailable, false, `${HSM}: nameAvailable`);
    assert.equal(taken.reason, "AlreadyExists", `${HSM}: reason`);
    assert.ok(typeof taken.message === "string" && taken.message.length > 0, `${HSM}: a message`);
    const vault = await hsms.checkMhsmNameAvailability({ name: VAULT });
    assert.deepEqual([vault.nameAvailable, vault.reason], [false, "AlreadyExists"], "a vault's name (one namespace)");
    const free = await hsms.checkMhsmNameAvailability({ name: "jsfreehsm" });
    assert.equal(free.nameAvailable, true, "a free name");
    assert.equal(free.reason, undefined, "a free name: no reason");
    const bad = await hsms.checkMhsmNameAvailability({ name: "a--b" });
    assert.equal(bad.nameAvailable, false, "a--b: nameAvailable");
    assert.equal(bad.reason, "AccountNameInvalid", "a--b: reason");
    assert.ok(typeof bad.message === "string" && bad.message.length > 0, "a--b: a message");
  });

  await group(`data plane of ${HSM}: both administrators at "/", a Crypto User assignment at /keys, an RSA-HSM key, CryptographyClient wrap/unwrap`, async () => {
    assert.deepEqual(await assignments(HSM), [[ADMIN.objectId, ADMINISTRATOR, "/"], [SECOND_ADMIN, ADMINISTRATOR, "/"]].sort(),
      "the initial administrators hold Managed HSM Administrator at /, nothing else is assigned");
    await assignCryptoUser(HSM);
    const since = rec.exchanges.length;
    key = await userKeys(HSM).createRsaKey("k", { keySize: 2048 });
    const post = one(since, "POST", "/keys/k/create", 200);
    assert.equal(post.url.host, `${HSM}.managedhsm.localhost:${env.httpsPort}`, "the create went to the new HSM's host");
    assert.equal(key.keyType, "RSA-HSM", "keyType");
    assert.match(key.id, new RegExp(`^${hsmUrl(HSM).replace(/\./g, "\\.")}/keys/k/[0-9a-f]{32}$`), "kid on the HSM");
    assert.equal(key.properties.recoveryLevel, "CustomizedRecoverable", "recoveryLevel: purge protection is on");
    assert.equal(key.properties.recoverableDays, 7, "recoverableDays: the HSM's retention");
    dek = randomBytes(32);
    const c = userCrypto(key.id);
    const ws = rec.exchanges.length;
    const w = await c.wrapKey("RSA-OAEP-256", dek);
    one(ws, "POST", `${new URL(key.id).pathname}/wrapkey`, 200);
    assert.equal(w.keyID, key.id, "wrap keyID");
    wrapped = w.result;
    sameBytes((await c.unwrapKey("RSA-OAEP-256", wrapped)).result, dek, "unwrap gives the key back");
  });

  await group(`beginUpdateAndWait(${RG}, ${HSM}, {tags}): one PATCH of the tags alone, answered and kept, the rest unchanged`, async () => {
    const since = rec.exchanges.length;
    const updated = await hsms.beginUpdateAndWait(RG, HSM, { tags: { team: "ledger" } }, LRO);
    const patch = one(since, "PATCH", armPath(HSM), 200);
    assert.deepEqual(JSON.parse(patch.requestBody), { tags: { team: "ledger" } }, "the PATCH named the tags alone");
    assert.deepEqual(updated.tags, { team: "ledger" }, "the answer's tags");
    const got = await hsms.get(RG, HSM);
    assert.deepEqual(got.tags, { team: "ledger" }, "get: the tags kept");
    for (const h of [updated, got]) {
      assert.deepEqual(h.sku, made.sku, "sku unchanged");
      assert.equal(h.location, LOCATION, "location unchanged");
      assert.equal(h.properties.hsmUri, made.properties.hsmUri, "hsmUri unchanged");
      assert.equal(h.properties.enablePurgeProtection, true, "enablePurgeProtection unchanged");
      assert.equal(h.properties.softDeleteRetentionInDays, 7, "retention unchanged");
      assert.deepEqual(sorted(h.properties.initialAdminObjectIds), sorted(made.properties.initialAdminObjectIds), "administrators unchanged");
      assert.equal(h.systemData?.createdAt?.getTime(), made.systemData.createdAt.getTime(), "systemData.createdAt unchanged");
      assert.ok(h.systemData?.lastModifiedAt >= made.systemData.lastModifiedAt, "systemData.lastModifiedAt moved on");
    }
  });

  await group("refusals through the SDK as RestError with kvmock's status and code (400, 409, 404, 403); nothing made or changed", async () => {
    const create = (name, body) => hsms.beginCreateOrUpdateAndWait(RG, name, body, LRO);
    await refused(create("jsnoadmin", params({ initialAdminObjectIds: undefined })), 400, "BadRequest", "a create without initialAdminObjectIds");
    await refused(create("jsnoadmin", params({ initialAdminObjectIds: [] })), 400, "BadRequest", "a create with initialAdminObjectIds []");
    await refused(create("jsnoadmin", params({}, { location: undefined })), 400, "LocationRequired", "a create without location");
    await refused(create("jsnoadmin", params({}, { sku: { family: "C", name: "Standard_B1" } })), 400, "BadRequest", "sku Standard_B1 of family C");
    await refused(create("jsnoadmin", params({ softDeleteRetentionInDays: 5 })), 400, "BadRequest", "retention 5 days");
    await refused(create("jsnoadmin", params({ enableSoftDelete: false })), 400, "BadRequest", "enableSoftDelete false");
    await refused(create("a--b", params()), 400, "BadRequest", "the name a--b");
    for (const n of ["jsnoadmin", "a--b"]) {
      await expectRestError(hsms.get(RG, n), 404, "ResourceNotFound", `nothing made as ${n}`);
    }
    assert.equal((await hsms.checkMhsmNameAvailability({ name: "jsnoadmin" })).nameAvailable, true, "jsnoadmin is still free");

    await refused(create(VAULT, params()), 409, "Conflict", `the name of the live vault ${VAULT}`);
    await refused(create(CFG_HSM, params()), 409, "Conflict", `the name of ${CFG_HSM}, an HSM of group kvmock`);
    assert.equal((await mgmt.vaults.get("kvmock", VAULT)).name, VAULT, "the vault is untouched");
    assert.equal((await hsms.get("kvmock", CFG_HSM)).id, armId("kvmock", CFG_HSM), `${CFG_HSM} is still in group kvmock`);

    await refused(create(HSM, params({ enablePurgeProtection: false })), 400, "BadRequest", "a PUT turning purge protection off");
    await refused(hsms.beginUpdateAndWait(RG, HSM, { properties: { enablePurgeProtection: false } }, LRO), 400, "BadRequest",
      "a PATCH turning purge protection off");
    await refused(create(HSM, params({ softDeleteRetentionInDays: 30 })), 400, "BadRequest", "a PUT changing the retention");
    const after = await hsms.get(RG, HSM);
    assert.equal(after.properties.enablePurgeProtection, true, "purge protection still on");
    assert.equal(after.properties.softDeleteRetentionInDays, 7, "retention still 7");
    assert.deepEqual(after.tags, { team: "ledger" }, "the refused PUTs replaced no tags");

    await refused(hsms.beginUpdateAndWait(RG, "jsnohsm", { tags: { a: "b" } }, LRO), 404, "ResourceNotFound", "a PATCH of no HSM");
    await refused(arm(USER).managedHsms.get(RG, HSM), 403, "AuthorizationFailed", "get as an identity without manage");
    await refused(arm(USER).managedHsms.beginCreateOrUpdateAndWait(RG, "jsbyuser", params(), LRO), 403, "AuthorizationFailed",
      "a create as an identity without manage");
  });

  await group(`beginDeleteAndWait(${RG}, ${HSM}): get 404, unlisted; listDeleted and getDeleted; its host 404; its name still taken`, async () => {
    const since = rec.exchanges.length;
    const t0 = Date.now();
    await hsms.beginDeleteAndWait(RG, HSM, LRO);
    const del = one(since, "DELETE", armPath(HSM), 200);
    assert.equal(del.body, "", "DELETE: an empty body");

    await refused(hsms.get(RG, HSM), 404, "ResourceNotFound", "get after the delete");
    assert.ok(!(await names(hsms.listByResourceGroup(RG))).includes(HSM), "listByResourceGroup no longer lists it");
    assert.ok(!(await names(hsms.listBySubscription())).includes(HSM), "listBySubscription no longer lists it");

    const listed = (await all(hsms.listDeleted())).filter((d) => d.name === HSM);
    assert.equal(listed.length, 1, "listDeleted lists it once");
    const d = listed[0];
    assert.equal(d.id, deletedId(HSM), "id");
    assert.equal(d.type, "Microsoft.KeyVault/deletedManagedHSMs", "type");
    assert.equal(d.properties?.mhsmId, armPath(HSM), "properties.mhsmId");
    assert.equal(d.properties.location, LOCATION, "properties.location");
    assert.ok(d.properties.deletionDate instanceof Date && Math.abs(d.properties.deletionDate - t0) < 120_000,
      `properties.deletionDate is now: ${d.properties.deletionDate}`);
    assert.equal(d.properties.scheduledPurgeDate - d.properties.deletionDate, 7 * DAY * 1000, "scheduledPurgeDate = deletionDate + 7 days");
    assert.equal(d.properties.purgeProtectionEnabled, true, "purgeProtectionEnabled");
    assert.deepEqual(d.properties.tags, { team: "ledger" }, "properties.tags");
    assert.deepEqual(await hsms.getDeleted(HSM, LOCATION), d, "getDeleted answers the listed item");
    assert.ok(!(await names(mgmt.vaults.listDeleted())).includes(HSM), "vaults.listDeleted does not list an HSM");

    // the host answers as an unknown HSM's does
    const gone = await expectRestError(userKeys(HSM).getKey("k"), 404, undefined, "getKey on the deleted HSM");
    const unknown = await expectRestError(userKeys("jsnohsm").getKey("k"), 404, undefined, "getKey on an unknown HSM");
    assert.ok(typeof unknown.code === "string" && unknown.code.length > 0, `an unknown HSM's 404 has a code: ${unknown.code}`);
    assert.equal(gone.code, unknown.code, `the deleted HSM's 404 is an unknown HSM's (${gone.code} / ${unknown.code})`);
    assert.equal(gone.message.replace(/jshsm1|jsnohsm/g, "NAME").replace(/\(Activity ID: [^)]*\)/, ""),
      unknown.message.replace(/jshsm1|jsnohsm/g, "NAME").replace(/\(Activity ID: [^)]*\)/, ""), "and its message");
    const raw = await hsmCall(HSM, "GET", RA_PATH);
    assert.equal(raw.status, 404, `GET ${RA_PATH} on the deleted HSM (body ${raw.text})`);

    const check = await hsms.checkMhsmNameAvailability({ name: HSM });
    assert.deepEqual([check.nameAvailable, check.reason], [false, "AlreadyExists"], "a deleted HSM's name is taken");
    const conflict = await refused(hsms.beginCreateOrUpdateAndWait(RG, HSM, params(), LRO), 409, "ConflictError", "a create over the deleted HSM");
    assert.match(conflict.message, /already exists in deleted state/, "the service's message");
    await refused(hsms.beginCreateOrUpdateAndWait(RG, "jsneverhsm", params({ createMode: "recover" }), LRO), 400,
      "SoftDeletedVaultDoesNotExist", "recovering an HSM never deleted");
  });

  await group(`recover: beginCreateOrUpdateAndWait(${RG}, ${HSM}, createMode "recover") brings back the HSM, its assignments and its key`, async () => {
    const since = rec.exchanges.length;
    const back = await hsms.beginCreateOrUpdateAndWait(RG, HSM,
      { location: LOCATION, properties: { tenantId: TENANT, createMode: "recover" } }, LRO);
    one(since, "PUT", armPath(HSM), 200);
    assert.equal(back.id, armPath(HSM), "id");
    assert.equal(back.properties.hsmUri, made.properties.hsmUri, "hsmUri");
    assert.equal(back.properties.provisioningState, "Succeeded", "provisioningState");
    assert.equal(back.properties.enablePurgeProtection, true, "enablePurgeProtection kept");
    assert.equal(back.properties.softDeleteRetentionInDays, 7, "retention kept");
    assert.deepEqual(back.sku, made.sku, "sku kept");
    assert.deepEqual(sorted(back.properties.initialAdminObjectIds), sorted(made.properties.initialAdminObjectIds), "administrators kept");
    assert.equal((await hsms.get(RG, HSM)).properties.hsmUri, made.properties.hsmUri, "get");
    assert.ok(!(await names(hsms.listDeleted())).includes(HSM), "no longer in listDeleted");
    await refused(hsms.getDeleted(HSM, LOCATION), 404, "ResourceNotFound", "getDeleted after the recovery");

    assert.deepEqual(await assignments(HSM),
      [[ADMIN.objectId, ADMINISTRATOR, "/"], [SECOND_ADMIN, ADMINISTRATOR, "/"], [USER.objectId, CRYPTO_USER, "/keys"]].sort(),
      "the local role assignments are back");
    assert.equal((await userKeys(HSM).getKey("k")).id, key.id, "the key is back");
    const c = userCrypto(key.id);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", wrapped)).result, dek, "it unwraps what it wrapped before the delete");
    const again = randomBytes(32);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", (await c.wrapKey("RSA-OAEP-256", again)).result)).result, again, "and wraps anew");
  });

  await group(`${HSM2} (enablePurgeProtection false): delete, beginPurgeDeletedAndWait on a 202 without Location, the name free; made again it is new`, async () => {
    const made2 = await hsms.beginCreateOrUpdateAndWait(RG, HSM2,
      params({ enablePurgeProtection: false, initialAdminObjectIds: [ADMIN.objectId] }), LRO);
    assert.equal(made2.properties.enablePurgeProtection, false, "enablePurgeProtection false accepted");
    await assignCryptoUser(HSM2);
    const k2 = await userKeys(HSM2).createRsaKey("gone", { keySize: 2048 });
    assert.equal(k2.properties.recoveryLevel, "CustomizedRecoverable+Purgeable", "recoveryLevel: purge protection is off");

    await hsms.beginDeleteAndWait(RG, HSM2, LRO);
    assert.equal((await hsms.getDeleted(HSM2, LOCATION)).properties.purgeProtectionEnabled, false, "getDeleted: purgeProtectionEnabled");

    const since = rec.exchanges.length;
    const lsince = locations.length;
    await hsms.beginPurgeDeletedAndWait(HSM2, LOCATION, LRO);
    const purgePath = `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.KeyVault/locations/${LOCATION}/deletedManagedHSMs/${HSM2}/purge`;
    const post = one(since, "POST", purgePath, 202);
    assert.equal(post.body, "", "the 202: no body");
    assert.equal(rec.exchanges.length - since, 1, `nothing polled after the 202 (saw ${rec.describe(since)})`);
    const seen = locations.slice(lsince);
    assert.deepEqual(seen.map((x) => [x.method, x.path, x.location]), [["POST", purgePath, undefined]], "the 202 had no Location header");

    await refused(hsms.getDeleted(HSM2, LOCATION), 404, "ResourceNotFound", "getDeleted after the purge");
    assert.ok(!(await names(hsms.listDeleted())).includes(HSM2), "listDeleted no longer lists it");
    assert.equal((await hsms.checkMhsmNameAvailability({ name: HSM2 })).nameAvailable, true, "the name is available again");

    // made again: only its new administrator's assignment, no key
    const again = await hsms.beginCreateOrUpdateAndWait(RG, HSM2, params({ initialAdminObjectIds: [ADMIN.objectId] }), LRO);
    assert.equal(again.properties.enablePurgeProtection, true, "the new HSM: purge protection by default");
    assert.deepEqual(await assignments(HSM2), [[ADMIN.objectId, ADMINISTRATOR, "/"]], "the new HSM: its administrator alone");
    await expectRestError(userKeys(HSM2).getKey("gone"), 403, "AccessDenied", "the old Crypto User assignment is gone");
    await assignCryptoUser(HSM2); // the purged HSM's assignment name is free again
    await expectRestError(userKeys(HSM2).getKey("gone"), 404, "KeyNotFound", "the purged HSM's key is gone");
  });

  await group(`purge refused: ${HSM} (purge protection) 405 MethodNotAllowed and stays deleted; a name never deleted 404`, async () => {
    await hsms.beginDeleteAndWait(RG, HSM, LRO);
    await refused(hsms.beginPurgeDeletedAndWait(HSM, LOCATION, LRO), 405, "MethodNotAllowed", "purge under purge protection");
    assert.equal((await hsms.getDeleted(HSM, LOCATION)).name, HSM, "still deleted, not purged");
    await refused(hsms.beginPurgeDeletedAndWait("jsneverhsm", LOCATION, LRO), 404, "ResourceNotFound", "purge of an HSM never deleted");
  });

  return summary();
}
