#!/usr/bin/env node
// kvmock in a container, through the official Azure JS SDK, from the host.
//
//   NODE_EXTRA_CA_CERTS=ca.pem IDENTITY_ENDPOINT=http://127.0.0.1:Q/msi/token \
//   IDENTITY_HEADER=kvmock node tests/docker/container.test.mjs --https-port P
//
// Run by scripts/docker-test.sh. The SDK packages are the ones pinned for the
// end-to-end tests (tests/e2e/js/node_modules, `npm ci --prefix tests/e2e/js`);
// they are loaded from there with createRequire, since ES modules ignore
// NODE_PATH. NODE_EXTRA_CA_CERTS is read by Node at start-up, so the caller
// sets it in this process's environment.
//
// With DefaultAzureCredential, on https://default.vault.localhost:P (the
// SDK's challenge-resource check on) and https://localhost:P (check off):
// create an RSA key, get it, list keys page by page, wrap a secret locally
// with the public key and unwrap it on the server. Every key id must carry
// the mapped port P. Prints PASS/FAIL lines; exits 1 on any failure.

import { createRequire } from "node:module";
import { createPublicKey, publicEncrypt, randomBytes, constants } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const sdkDir = join(here, "..", "e2e", "js");
const require = createRequire(join(sdkDir, "package.json"));
const { DefaultAzureCredential } = require("@azure/identity");
const { KeyClient, CryptographyClient } = require("@azure/keyvault-keys");

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const port = Number(arg("--https-port"));
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node container.test.mjs --https-port P");
  process.exit(2);
}
for (const v of ["NODE_EXTRA_CA_CERTS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"]) {
  if (!process.env[v]) {
    console.log(`FAIL setup: ${v} is not set`);
    process.exit(1);
  }
}

let failures = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

const run = randomBytes(3).toString("hex");
const credential = new DefaultAzureCredential();

for (const origin of [`https://default.vault.localhost:${port}`, `https://localhost:${port}`]) {
  const verifyOff = !origin.includes(".vault.");
  const tag = verifyOff ? "localhost" : "vault.localhost";
  const opts = () => (verifyOff ? { disableChallengeResourceVerification: true } : {});
  const client = new KeyClient(origin, credential, opts());
  const name = `js-${tag.replace(".", "-")}-${run}`;
  let key;

  await check(`SDK [${tag}] DefaultAzureCredential: createRsaKey and getKey`, async () => {
    key = await client.createRsaKey(name, { keySize: 2048 });
    assert.ok(key.id.startsWith(`${origin}/keys/${name}/`), `key id ${key.id} starts with ${origin}/keys/${name}/`);
    const got = await client.getKey(name);
    assert.equal(got.id, key.id, "getKey returns the created version");
  });

  await check(`SDK [${tag}] listPropertiesOfKeys pages (maxPageSize 1) and finds the key`, async () => {
    for (let i = 0; i < 2; i++) await client.createEcKey(`${name}-ec${i}`, { curve: "P-256" });
    const names = new Set();
    let pages = 0;
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 1 })) {
      pages++;
      for (const p of page) {
        assert.ok(p.id.startsWith(`${origin}/keys/`), `listed id ${p.id}`);
        names.add(p.name);
      }
    }
    assert.ok(pages >= 3, `pages followed through nextLink: ${pages}`);
    assert.ok(names.has(name) && names.has(`${name}-ec1`), `${name} listed: ${[...names].join(", ")}`);
  });

  await check(`SDK [${tag}] wrap locally with the public key, unwrapKey on the server`, async () => {
    assert.ok(key, "the key from the first check");
    const pub = createPublicKey({
      key: { kty: "RSA", n: Buffer.from(key.key.n).toString("base64url"), e: Buffer.from(key.key.e).toString("base64url") },
      format: "jwk",
    });
    const secret = randomBytes(32);
    const wrapped = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, secret);
    const crypto = new CryptographyClient(key.id, credential, opts());
    const res = await crypto.unwrapKey("RSA-OAEP-256", wrapped);
    assert.ok(Buffer.from(res.result).equals(secret), "unwrapped bytes");
    assert.equal(res.keyID, key.id, "unwrap names the key version");
  });
}

console.log(failures ? `FAILED (${failures})` : "ALL PASSED");
process.exitCode = failures ? 1 : 0;
