// kvmock from a Node.js test with Testcontainers: start the image, trust its
// CA, get tokens from its managed-identity endpoint, use a vault, stop it.
//
//   npm ci --prefix docker/examples
//   KVMOCK_IMAGE=kvmock:latest node docker/examples/testcontainers.mjs
//
// Testcontainers starts its "Ryuk" reaper from Docker Hub; where no registry
// is reachable, set TESTCONTAINERS_RYUK_DISABLED=true (scripts/docker-test.sh
// does, and stops the container itself).
//
// Docker maps the container's ports to random host ports; kvmock puts the
// port a request came in on into every key id and link, so that just works.
// The CA only exists once the container runs, too late for
// NODE_EXTRA_CA_CERTS (read at process start): give it to the clients in
// their HTTPS agent instead (clientOptions below). Token requests go over
// plain HTTP.

import { GenericContainer, Wait } from "testcontainers";
import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient, CryptographyClient } from "@azure/keyvault-keys";
import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import { Agent } from "node:https";
import assert from "node:assert/strict";

export async function startKvmock(image = process.env.KVMOCK_IMAGE ?? "kvmock:latest") {
  const container = await new GenericContainer(image)
    .withExposedPorts(8443, 8080)
    .withWaitStrategy(Wait.forHttp("/healthz", 8080).forStatusCode(200))
    .withStartupTimeout(60_000)
    .start();
  // Docker may publish a port on different host ports for IPv4 and IPv6;
  // Testcontainers gives the one of the family its host name resolves to
  // first. Connect in that family too: *.vault.localhost may resolve to the
  // other one first (::1 before 127.0.0.1), and reach another container port.
  const host = container.getHost();
  const { family } = await lookup(host);
  const httpPort = container.getMappedPort(8080);
  const httpsPort = container.getMappedPort(8443);
  const httpBase = `http://${family === 6 ? "[::1]" : "127.0.0.1"}:${httpPort}`;
  const ca = await (await fetch(`${httpBase}/ca.pem`)).text();
  return {
    container,
    httpsPort,
    httpPort,
    ca,
    // Options for the SDK clients: trust the CA, connect in Testcontainers' family.
    clientOptions: { agent: new Agent({ ca, family }) },
    // https://NAME.vault.localhost:PORT needs *.vault.localhost to resolve to
    // the loopback (libnss-myhostname or /etc/hosts); otherwise use
    // https://localhost:PORT with disableChallengeResourceVerification: true.
    vaultUrl: (vault = "default") => `https://${vault}.vault.localhost:${httpsPort}`,
    // What ManagedIdentityCredential / DefaultAzureCredential read.
    identityEnv: { IDENTITY_ENDPOINT: `${httpBase}/msi/token`, IDENTITY_HEADER: "kvmock" },
  };
}

async function main() {
  const kv = await startKvmock();
  try {
    Object.assign(process.env, kv.identityEnv); // before the credential is created
    const credential = new DefaultAzureCredential();
    const clientOptions = kv.clientOptions;
    const keys = new KeyClient(kv.vaultUrl(), credential, clientOptions);

    const key = await keys.createRsaKey(`tc-${randomBytes(3).toString("hex")}`, { keySize: 2048 });
    assert.ok(key.id.startsWith(`${kv.vaultUrl()}/keys/`), key.id);
    const crypto = new CryptographyClient(key.id, credential, clientOptions);
    const secret = randomBytes(32);
    const { result: wrapped } = await crypto.wrapKey("RSA-OAEP-256", secret);
    const { result } = await crypto.unwrapKey("RSA-OAEP-256", wrapped);
    assert.ok(Buffer.from(result).equals(secret), "unwrapped secret");
    console.log(`testcontainers example OK: ${key.id}`);
  } finally {
    await kv.container.stop();
  }
}

main().catch((err) => {
  console.error(`testcontainers example FAILED: ${err && err.stack ? err.stack : err}`);
  process.exitCode = 1;
});
