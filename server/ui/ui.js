// kvmock's web view: read-only state and the audit stream, plus the clock.
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};
const when = (s) => (s ? new Date(s * 1000).toISOString().replace(".000Z", "Z") : "");

function table(headers, rows, rowClass) {
  if (rows.length === 0) return el("p", { class: "empty" }, "none");
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", rowClass ? { class: rowClass(r) } : {});
    for (const cell of r.cells) tr.append(el("td", {}, cell));
    body.append(tr);
  }
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), body);
}

// Who the vault's firewall lets in, as the portal's Networking page says it.
function network(p) {
  if (p.publicNetworkAccess === "Disabled") return "public access disabled";
  const acls = p.networkAcls;
  if (!acls || acls.defaultAction !== "Deny") return "all networks";
  const ranges = acls.ipRules.map((r) => r.value);
  return `selected addresses (${ranges.length ? ranges.join(" ") : "none"})`;
}

// Secure key release: "no", or "exportable" with the authorities its policy trusts and
// whether the policy is locked.
function release(ver) {
  if (!ver.exportable) return "no";
  let authorities = [];
  try {
    authorities = JSON.parse(ver.releasePolicy).anyOf.map((a) => a.authority);
  } catch (e) { /* shown without them */ }
  return `exportable to ${authorities.join(", ")}` +
         (ver.releasePolicyImmutable ? " (policy immutable)" : "");
}

function renderVault(v) {
  const p = v.properties;
  const box = el("div", { class: "vault", "data-vault": v.name });
  box.append(el("h2", {}, `vault ${v.name}`));
  box.append(el("p", { class: "props" },
    `soft delete: ${p.enableSoftDelete ? `on, ${p.softDeleteRetentionInDays} days` : "off"} · ` +
    `purge protection: ${p.enablePurgeProtection ? "on" : "off"} · ` +
    `authorization: ${p.enableRbacAuthorization ? "RBAC" : "access policies"} · ` +
    `network: ${network(p)} · ` +
    `recovery level: ${v.recoveryLevel}`));
  const versions = [];
  for (const k of v.keys) {
    for (const ver of k.versions) {
      versions.push({
        disabled: !ver.enabled,
        cells: [k.name, ver.version + (ver.version === k.current ? " (current)" : ""), ver.kty,
                ver.enabled ? "yes" : "no", when(ver.created), when(ver.exp), ver.keyOps.join(" "),
                release(ver)],
      });
    }
  }
  box.append(el("h3", {}, "Keys"));
  box.append(table(["key", "version", "type", "enabled", "created", "expires", "operations",
                    "release"], versions,
    (r) => (r.disabled ? "disabled key-row" : "key-row")));
  box.append(el("h3", {}, "Deleted keys"));
  box.append(table(["key", "deleted", "scheduled purge"],
    v.deletedKeys.map((d) => ({ cells: [d.name, when(d.deletedDate), when(d.scheduledPurgeDate)] })),
    () => "deleted-row"));
  box.append(el("h3", {}, "Access policies"));
  box.append(table(["object id", "application id", "key permissions"],
    v.accessPolicies.map((a) => ({ cells: [a.objectId, a.applicationId || "", a.keys.join(" ")] })),
    () => "policy-row"));
  box.append(el("h3", {}, "Role assignments"));
  box.append(table(["assignment", "principal", "role", "scope"],
    v.roleAssignments.map((r) => ({ cells: [r.id, r.principalId, r.role, r.scope] })),
    () => "role-row"));
  return box;
}

// How each identity signs in: a managed identity's endpoint, or an application's secret,
// certificates and federated credentials (never the secret itself).
function signsInWith(id) {
  const ways = [];
  if (id.clientSecret) ways.push("client secret");
  for (const c of id.certificates) ways.push(`certificate ${c.thumbprint} (until ${when(c.notAfter)})`);
  for (const f of id.federatedCredentials) ways.push(`federated: ${f.issuer} ${f.subject}`);
  return ways.length ? ways.join("; ") : "managed identity";
}

function renderIdentities(ids) {
  return table(["identity", "object id", "client id", "signs in with"],
    ids.map((i) => ({ cells: [i.name + (i.default ? " (default)" : ""), i.objectId, i.clientId,
                              signsInWith(i)] })),
    () => "identity-row");
}

async function refreshState() {
  const res = await fetch("/ui/api/state");
  if (!res.ok) return;
  const state = await res.json();
  document.getElementById("now").textContent = when(state.now);
  document.getElementById("identities").replaceChildren(renderIdentities(state.identities));
  const root = document.getElementById("vaults");
  root.replaceChildren(...state.vaults.map(renderVault));
}

// The caller's object id, as its token names it ("oid", in every record).
function callerOid(r) {
  return r.identity.claim.oid || "";
}

let auditNext = "/admin/audit?maxresults=1000";
async function refreshAudit() {
  while (auditNext) {
    const res = await fetch(auditNext);
    if (!res.ok) return;
    const doc = await res.json();
    const body = document.querySelector("#audit tbody");
    for (const r of doc.value) {
      const status = r.properties.httpStatusCode;
      const denied = status === 401 || status === 403;
      // a key's id (or a deleted key's); a vault's or none for the others
      const named = /^https:\/\/[^/]+\/(?:deleted)?keys\/(.+)$/.exec(r.properties.id || "");
      const key = named ? named[1] : "";
      body.prepend(el("tr", { class: denied ? "denied audit-row" : "audit-row" },
        el("td", {}, r.time), el("td", {}, r.operationName), el("td", {}, status),
        el("td", {}, callerOid(r)), el("td", {}, r.properties.vault || ""),
        el("td", {}, key)));
    }
    if (!doc.nextLink) {
      // resume after the last record seen (by its number: the oldest go when the log is full)
      auditNext = `/admin/audit?maxresults=1000&$skiptoken=${doc.resumeToken}`;
      return;
    }
    auditNext = doc.nextLink.replace(/^https?:\/\/[^/]+/, "");
  }
}

document.getElementById("advance").addEventListener("click", async () => {
  const days = Number(document.getElementById("advance-days").value || 0);
  await fetch("/admin/clock", { method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify({ advanceSeconds: Math.round(days * 86400) }) });
  await refreshState();
});

async function tick() {
  try {
    await refreshState();
    await refreshAudit();
  } finally {
    setTimeout(tick, 2000);
  }
}
tick();
