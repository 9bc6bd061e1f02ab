#!/usr/bin/env node
// A Managed HSM (hsm1, from the configuration file) at
// https://hsm1.managedhsm.localhost:{port}:
//   - its local access control as the initial administrator, over raw HTTPS:
//     the 8 built-in role definitions listed and one read, a Crypto User
//     assignment at /keys made (201), read, listed and deleted (200, the
//     deleted assignment), then not found (404); an unknown assignment's
//     DELETE and an unknown definition's GET answered 404 with the error body;
//   - the keys API through the official JS SDK (@azure/keyvault-keys, its
//     challenge resource verification left on) as the assigned principal:
//     RSA, EC and oct keys answered as RSA-HSM, EC-HSM and oct-HSM,
//     wrap/unwrap and sign/verify on the HSM, beginDeleteKey and its poller;
//     the administrator refused any key access (403); the principal refused
//     (403) once its assignment is gone.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/managed_hsm.test.mjs --kvmock build/kvmock
//
// @azure/keyvault-admin (KeyVaultAccessControlClient) is not available from
// the npm registry these machines reach, so the access control API is driven
// here over raw HTTPS (node:https trusting only the kvmock CA, a bearer token
// from @azure/identity's ManagedIdentityCredential for
// https://managedhsm.azure.net/.default), and through an SDK only in
// tests/e2e/test_managed_hsm.py, with Debian's Python
// azure-keyvault-administration.
//
// The script is both the driver (starts kvmock with a config file, stops it
// and checks a clean exit) and, with --child, the scenario (see helpers.mjs).

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { fileURLToPath } from "node:url";
import {
  DAY, decodeJwt, errorBody, expectRestError, isChild, makeRecorder, makeReporter, runDriver, runScenario, sameBytes,
  scenarioEnv,
} from "./helpers.mjs";

const TENANT = "6b766d6f-636b-4000-8000-000000000001";
const ADMIN = { name: "hsm-admin", objectId: "0a000000-0000-4000-8000-0000000000a1", clientId: "0c000000-0000-4000-8000-0000000000a1", default: true };
const USER = { name: "hsm-user", objectId: "0a000000-0000-4000-8000-0000000000a2", clientId: "0c000000-0000-4000-8000-0000000000a2" };
const HSM = "hsm1";
const RETENTION_DAYS = 7;
const CONFIG = {
  tenantId: TENANT,
  identities: [ADMIN, USER],
  managedHsms: [{ name: HSM, properties: { initialAdminObjectIds: [ADMIN.objectId], softDeleteRetentionInDays: RETENTION_DAYS } }],
};
const API_VERSION = "7.6"; // of the raw access control calls
const HSM_RESOURCE = "https://managedhsm.azure.net";
const DEF_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/";
const RA_PATH = "/providers/Microsoft.Authorization/roleAssignments";
const RD_PATH = "/providers/Microsoft.Authorization/roleDefinitions";
// Managed HSM's built-in local roles, in the order the service lists them.
const BUILT_INS = [
  ["7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8", "Managed HSM Backup User"],
  ["33413926-3206-4cdd-b39a-83574fe37a17", "Managed HSM Crypto Service Encryption User"],
  ["21dbd100-6940-42c2-9190-5d6cb909625c", "Managed HSM Crypto Service Release User"],
  ["2c18b078-7c48-4d3a-af88-5a3a1b3f82b3", "Managed HSM Crypto Auditor"],
  ["4bd23610-cdcf-4971-bdee-bdc562cc28e4", "Managed HSM Policy Administrator"],
  ["21dbd100-6940-42c2-9190-5d6cb909625b", "Managed HSM Crypto User"],
  ["515eb02d-2335-4d2d-92f2-b1cbdf9c3778", "Managed HSM Crypto Officer"],
  ["a290e904-7015-4bba-90c8-60543313cdb4", "Managed HSM Administrator"],
];
const CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b";
const ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4";
const ASSIGNMENT = "5e1f0000-0000-4000-8000-0000000000c1";
const UNKNOWN = "5e1f0000-0000-4000-8000-00000000dead";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

if (!isChild()) {
  await runDriver({ script: fileURLToPath(import.meta.url), config: CONFIG });
} else {
  runScenario("[managed_hsm]", scenario);
}

/** A role assignment's JSON body. */
const assignment = (name, principalId, roleGuid, scope) => ({
  id: `${RA_PATH}/${name}`,
  name,
  properties: { principalId, roleDefinitionId: `${DEF_PREFIX}${roleGuid}`, scope },
  type: "Microsoft.Authorization/roleAssignments",
});

/** A built-in role definition's JSON body (dataActions as given). */
const definition = (guid, roleName, dataActions) => ({
  id: `${DEF_PREFIX}${guid}`,
  name: guid,
  properties: {
    assignableScopes: ["/"],
    description: "",
    permissions: [{ actions: [], dataActions, notActions: [], notDataActions: [] }],
    roleName,
    type: "AKVBuiltInRole",
  },
  type: "Microsoft.Authorization/roleDefinitions",
});

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[managed_hsm]");
  const hsmHost = `${HSM}.managedhsm.localhost:${env.httpsPort}`;
  const hsmUrl = `https://${hsmHost}`;
  const challengeScope = `https://managedhsm.localhost:${env.httpsPort}/.default`;
  const ca = readFileSync(env.caPath);

  // The scopes each SDK credential is asked for (the SDKs take them from the 401 challenge).
  const scopesAsked = { admin: [], user: [] };
  const cred = (who, id) => {
    const inner = new ManagedIdentityCredential({ clientId: id.clientId });
    return { getToken: (scopes, opts) => { scopesAsked[who].push([scopes].flat().join(" ")); return inner.getToken(scopes, opts); } };
  };
  const adminCred = cred("admin", ADMIN);
  const userCred = cred("user", USER);
  const adminKeys = new KeyClient(hsmUrl, adminCred, rec.options());
  const userKeys = new KeyClient(hsmUrl, userCred, rec.options());
  const userCrypto = (keyId) => new CryptographyClient(keyId, userCred, rec.options());

  // The administrator's bearer token for the raw access control calls.
  const adminToken = (await new ManagedIdentityCredential({ clientId: ADMIN.clientId }).getToken(`${HSM_RESOURCE}/.default`)).token;

  /**
   * One raw HTTPS call to the HSM as the administrator (api-version added,
   * only the kvmock CA trusted); resolves {status, headers, text, json}.
   */
  function hsm(method, path, body) {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const url = new URL(`${hsmUrl}${path}?api-version=${API_VERSION}`);
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
          } catch { /* left undefined: answered() then fails, showing the text */ }
          resolvePromise({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
      req.on("error", reject);
      req.end(data);
    });
  }

  /** `r` answered `status` with exactly `body` as JSON (members in any order). */
  function answered(r, status, body, what) {
    assert.equal(r.status, status, `${what}: status (body ${r.text})`);
    assert.equal(r.headers["content-type"], "application/json; charset=utf-8", `${what}: Content-Type`);
    assert.equal(r.headers["content-length"], String(Buffer.byteLength(r.text)), `${what}: Content-Length`);
    assert.deepEqual(r.json, body, `${what}: body (text ${r.text})`);
  }

  /** `r` answered `status` with {"error":{"code","message"}}, the message ending in its request id. */
  function failed(r, status, code, message, what) {
    const id = r.headers["x-ms-request-id"];
    assert.match(id ?? "", GUID, `${what}: x-ms-request-id`);
    answered(r, status, { error: { code, message: `${message} (Activity ID: ${id})` } }, what);
  }

  /** 403 AccessDenied naming the action and the scope; returns the error. */
  async function denied(promise, action, scope, what) {
    const err = await expectRestError(promise, 403, "AccessDenied", what);
    const body = errorBody(err, rec);
    assert.equal(body.error?.code, "AccessDenied", `${what}: error.code in the body`);
    assert.match(body.error?.message ?? "", new RegExp(`^Not authorized to access Microsoft\\.KeyVault/managedHsm/${action.replace(/\//g, "\\/")} on ${scope.replace(/\//g, "\\/")} \\(Activity ID: [^)]+\\)$`),
      `${what}: error.message (body ${JSON.stringify(body)})`);
    return err;
  }

  /** The single SDK exchange since `since` with this method and path; its status must be `status`. */
  function one(since, method, path, status) {
    const hits = rec.find(since, method, path);
    assert.equal(hits.length, 1, `one ${method} ${path} (saw ${rec.describe(since)})`);
    assert.equal(hits[0].url.host, hsmHost, `${method} ${path}: host`);
    assert.equal(hits[0].status, status, `${method} ${path}: status (body ${hits[0].body})`);
    return hits[0];
  }

  let initialName; // of the initial administrator's assignment, found in the first list
  const theirs = () => assignment(initialName, ADMIN.objectId, ADMINISTRATOR, "/");
  const ours = assignment(ASSIGNMENT, USER.objectId, CRYPTO_USER, "/keys");
  const keys = {}; // name -> KeyVaultKey made by the user

  await group(`administrator (a ManagedIdentityCredential token for ${HSM_RESOURCE}): GET ${RD_PATH} gives the 8 built-in roles; GET ${RD_PATH}/{Crypto User} gives one`, async () => {
    const claims = decodeJwt(adminToken);
    assert.deepEqual([claims.aud, claims.oid, claims.tid], [HSM_RESOURCE, ADMIN.objectId, TENANT], "the token: aud, oid, tid");

    const r = await hsm("GET", RD_PATH);
    assert.equal(r.status, 200, `GET ${RD_PATH}: status (body ${r.text})`);
    const defs = r.json?.value;
    assert.ok(Array.isArray(defs), `GET ${RD_PATH}: {"value":[...]} (body ${r.text})`);
    assert.deepEqual(defs.map((d) => [d.name, d.properties?.roleName]), BUILT_INS, "the built-ins, in the service's order");
    const actions = Object.fromEntries(defs.map((d) => [d.name, d.properties.permissions?.[0]?.dataActions]));
    answered(r, 200, { value: BUILT_INS.map(([g, n]) => definition(g, n, actions[g])) },
      `GET ${RD_PATH} (the 8 built-ins, dataActions as listed)`);
    for (const [guid, roleName] of BUILT_INS) {
      assert.ok(actions[guid].length > 0 && actions[guid].every((a) => a.startsWith("Microsoft.KeyVault/managedHsm/")),
        `${roleName}: Managed HSM data actions: ${actions[guid]}`);
    }
    const user = actions[CRYPTO_USER];
    for (const a of ["keys/create", "keys/delete", "keys/read/action", "keys/wrap/action", "keys/unwrap/action", "keys/sign/action", "keys/verify/action"]) {
      assert.ok(user.includes(`Microsoft.KeyVault/managedHsm/${a}`), `Crypto User may ${a}: ${user}`);
    }
    assert.ok(!user.includes("Microsoft.KeyVault/managedHsm/keys/deletedKeys/read/action"), "Crypto User may not read deleted keys");
    const admin = actions[ADMINISTRATOR];
    assert.ok(!admin.some((a) => a.includes("/keys/")), `the Administrator has no key actions: ${admin}`);
    assert.ok(admin.includes("Microsoft.KeyVault/managedHsm/roleAssignments/write/action"), "the Administrator writes role assignments");

    answered(await hsm("GET", `${RD_PATH}/${CRYPTO_USER}`), 200, definition(CRYPTO_USER, "Managed HSM Crypto User", user),
      `GET ${RD_PATH}/${CRYPTO_USER}: the listed one`);
  });

  await group(`administrator: PUT /keys${RA_PATH}/{name} (Crypto User, principal) 201; GET it 200; GET ${RA_PATH} at / and /keys lists both assignments`, async () => {
    const before = await hsm("GET", RA_PATH);
    assert.equal(before.status, 200, `GET ${RA_PATH}: status (body ${before.text})`);
    assert.equal(before.json?.value?.length, 1, `only the initial administrator's assignment: ${before.text}`);
    initialName = before.json.value[0].name;
    assert.match(initialName, GUID, "its name is a GUID");
    answered(before, 200, { value: [theirs()] },
      `GET ${RA_PATH}: the initial administrator's Managed HSM Administrator at /, its id naming no scope`);

    const put = await hsm("PUT", `/keys${RA_PATH}/${ASSIGNMENT}`,
      { properties: { roleDefinitionId: `${DEF_PREFIX}${CRYPTO_USER}`, principalId: USER.objectId } });
    answered(put, 201, ours, `PUT /keys${RA_PATH}/${ASSIGNMENT}`);
    answered(await hsm("GET", `/keys${RA_PATH}/${ASSIGNMENT}`), 200, ours, `GET /keys${RA_PATH}/${ASSIGNMENT}`);

    for (const scope of ["", "/keys"]) {
      const r = await hsm("GET", `${scope}${RA_PATH}`);
      assert.equal(r.status, 200, `GET ${scope}${RA_PATH}: status (body ${r.text})`);
      // the order of the list is not specified: both assignments, in the order given
      const names = r.json?.value?.map((a) => a.name) ?? [];
      assert.deepEqual([...names].sort(), [initialName, ASSIGNMENT].sort(), `GET ${scope}${RA_PATH}: both assignments (body ${r.text})`);
      answered(r, 200, { value: names.map((n) => (n === ASSIGNMENT ? ours : theirs())) }, `GET ${scope}${RA_PATH}`);
    }
  });

  await group("principal (Crypto User at /keys): createRsaKey, createEcKey, createKey(oct) are answered RSA-HSM, EC-HSM, oct-HSM", async () => {
    const made = [
      ["rsa", () => userKeys.createRsaKey("rsa", { keySize: 2048 }), "RSA", "RSA-HSM"],
      ["ec", () => userKeys.createEcKey("ec", { curve: "P-256" }), "EC", "EC-HSM"],
      ["aes", () => userKeys.createKey("aes", "oct", { keySize: 256 }), "oct", "oct-HSM"],
    ];
    for (const [name, create, asked, answered] of made) {
      const since = rec.exchanges.length;
      const k = await create();
      const post = one(since, "POST", `/keys/${name}/create`, 200);
      assert.equal(JSON.parse(post.requestBody).kty, asked, `${name}: the SDK asked for ${asked}`);
      assert.equal(k.keyType, answered, `${name}: keyType`);
      assert.equal(k.key.kty, answered, `${name}: key.kty`);
      assert.match(k.id, new RegExp(`^${hsmUrl.replace(/\./g, "\\.")}/keys/${name}/[0-9a-f]{32}$`), `${name}: kid on the HSM`);
      assert.equal(k.properties.vaultUrl, hsmUrl, `${name}: vaultUrl`);
      assert.equal(k.properties.recoveryLevel, "CustomizedRecoverable+Purgeable", `${name}: recoveryLevel (retention ${RETENTION_DAYS} days)`);
      assert.equal(k.properties.recoverableDays, RETENTION_DAYS, `${name}: recoverableDays`);
      assert.equal(k.properties.exportable, false, `${name}: exportable`);
      keys[name] = k;
    }
    assert.equal(keys.rsa.key.n.length, 256, "RSA-HSM: a 2048-bit modulus");
    sameBytes(keys.rsa.key.e, [1, 0, 1], "RSA-HSM: e");
    assert.equal(keys.ec.key.crv, "P-256", "EC-HSM: curve");
    assert.equal(keys.aes.key.k, undefined, "oct-HSM: no key material in the answer");
    assert.equal((await userKeys.getKey("ec")).id, keys.ec.id, "getKey");
    assert.ok(scopesAsked.user.length >= 1 && scopesAsked.user.every((s) => s === challengeScope),
      `the key client asked for the challenge's scope ${challengeScope}: ${JSON.stringify(scopesAsked.user)}`);
  });

  await group("principal: CryptographyClient wrap/unwrap (RSA-HSM RSA-OAEP-256, oct-HSM A256KW) and sign/verify (EC-HSM ES256) on the HSM", async () => {
    const dek = randomBytes(32);
    for (const [name, alg] of [["rsa", "RSA-OAEP-256"], ["aes", "A256KW"]]) {
      const c = userCrypto(keys[name].id);
      const since = rec.exchanges.length;
      const w = await c.wrapKey(alg, dek);
      one(since, "POST", `${new URL(keys[name].id).pathname}/wrapkey`, 200);
      assert.equal(w.keyID, keys[name].id, `${alg}: keyID`);
      assert.equal(w.algorithm, alg, `${alg}: algorithm`);
      const u = await c.unwrapKey(alg, w.result);
      one(since, "POST", `${new URL(keys[name].id).pathname}/unwrapkey`, 200);
      sameBytes(u.result, dek, `${alg}: unwrap gives the key back`);
    }
    const c = userCrypto(keys.ec.id);
    const digest = createHash("sha256").update("managed hsm").digest();
    const since = rec.exchanges.length;
    const s = await c.sign("ES256", digest);
    one(since, "POST", `${new URL(keys.ec.id).pathname}/sign`, 200);
    assert.equal(s.result.length, 64, "ES256: a 64-byte r||s signature");
    assert.equal((await c.verify("ES256", digest, s.result)).result, true, "verify the signature");
    const tampered = Buffer.from(digest);
    tampered[0] ^= 1;
    assert.equal((await c.verify("ES256", tampered, s.result)).result, false, "verify refuses another digest");
    assert.equal(rec.find(since, "POST", `${new URL(keys.ec.id).pathname}/verify`).length, 2,
      `both verifies went to the HSM (saw ${rec.describe(since)})`);
  });

  await group("the administrator has no key access: createKey and getKey refused with 403 AccessDenied", async () => {
    await denied(adminKeys.createRsaKey("admins", { keySize: 2048 }), "keys/create", "/keys", "createRsaKey as the administrator");
    await denied(adminKeys.getKey("rsa"), "keys/read/action", "/keys", "getKey as the administrator");
    await expectRestError(userKeys.getKey("admins"), 404, "KeyNotFound", "the refused create made nothing");
    assert.ok(scopesAsked.admin.length >= 1 && scopesAsked.admin.every((s) => s === challengeScope),
      `the administrator's key client asked for the challenge's scope ${challengeScope}: ${JSON.stringify(scopesAsked.admin)}`);
  });

  await group("principal: beginDeleteKey + pollUntilDone (the poller's GET /deletedkeys is refused to a Crypto User and ends the poll)", async () => {
    const since = rec.exchanges.length;
    const poller = await userKeys.beginDeleteKey("rsa", { intervalInMs: 50 });
    const deleted = await poller.pollUntilDone();
    one(since, "DELETE", "/keys/rsa", 200);
    const polled = rec.find(since, "GET", "/deletedkeys/rsa");
    assert.ok(polled.length >= 1 && polled.every((x) => x.status === 403),
      `the poller's GET /deletedkeys/rsa: 403 (saw ${rec.describe(since)})`);
    assert.equal(JSON.parse(polled[0].body).error?.code, "AccessDenied", "its error code");
    assert.equal(deleted.name, "rsa", "name");
    assert.equal(deleted.id, keys.rsa.id, "id");
    assert.equal(deleted.properties.recoveryId, `${hsmUrl}/deletedkeys/rsa`, "recoveryId");
    assert.ok(deleted.properties.deletedOn instanceof Date, "deletedOn");
    assert.equal(deleted.properties.scheduledPurgeDate - deleted.properties.deletedOn, RETENTION_DAYS * DAY * 1000,
      "scheduledPurgeDate = deletedOn + retention");
    await expectRestError(userKeys.getKey("rsa"), 404, "KeyNotFound", "getKey after the delete");
    await denied(userKeys.getDeletedKey("rsa"), "keys/deletedKeys/read/action", "/keys", "getDeletedKey as a Crypto User");
  });

  await group(`administrator: DELETE /keys${RA_PATH}/{name} 200 with the deleted assignment, then GET 404; the principal is then refused (403)`, async () => {
    answered(await hsm("DELETE", `/keys${RA_PATH}/${ASSIGNMENT}`), 200, ours, `DELETE /keys${RA_PATH}/${ASSIGNMENT}: the deleted assignment`);
    failed(await hsm("GET", `/keys${RA_PATH}/${ASSIGNMENT}`), 404, "RoleAssignmentNotFound", "Requested role assignment not found",
      `GET /keys${RA_PATH}/${ASSIGNMENT} after the delete`);
    answered(await hsm("GET", RA_PATH), 200, { value: [theirs()] }, `GET ${RA_PATH}: only the administrator's assignment is left`);

    await denied(userKeys.createEcKey("after", { curve: "P-256" }), "keys/create", "/keys", "createEcKey after the assignment was deleted");
    await denied(userKeys.getKey("ec"), "keys/read/action", "/keys", "getKey after the assignment was deleted");
    // CryptographyClient first reads the key; on a 403 it goes on to the HSM's wrapkey
    const cs = rec.exchanges.length;
    await denied(userCrypto(keys.aes.id).wrapKey("A256KW", randomBytes(32)), "keys/wrap/action", "/keys",
      "CryptographyClient wrapKey after the assignment was deleted");
    assert.deepEqual(rec.exchanges.slice(cs).map((x) => `${x.method} ${x.url.pathname} ${x.status}`),
      [`GET ${new URL(keys.aes.id).pathname} 403`, `POST ${new URL(keys.aes.id).pathname}/wrapkey 403`],
      "its read of the key and its wrapkey were both refused");
  });

  await group(`administrator: DELETE ${RA_PATH}/{unknown} 404 RoleAssignmentNotFound; GET ${RD_PATH}/{unknown} 404 RoleDefinitionNotFound`, async () => {
    failed(await hsm("DELETE", `${RA_PATH}/${UNKNOWN}`), 404, "RoleAssignmentNotFound", "Requested role assignment not found",
      `DELETE ${RA_PATH}/${UNKNOWN}`);
    failed(await hsm("GET", `${RD_PATH}/${UNKNOWN}`), 404, "RoleDefinitionNotFound", "Requested role definition not found",
      `GET ${RD_PATH}/${UNKNOWN}`);
    answered(await hsm("GET", RA_PATH), 200, { value: [theirs()] }, `GET ${RA_PATH}: nothing changed`);
  });

  return summary();
}
