#!/usr/bin/env node
// The seeds' manual procedure (seed 000, "Regenerate storage account access keys") as a plain
// sequential script: the naive baseline `npm run bench` measures keyturn against. One account at a
// time: list the workspace's datastores, regenerate the standby key (the one the datastores do not
// hold), re-register each AccountKey datastore on the account with the new key (GET, then PUT with
// the new key, as keyturn's shared/azure/datastores.ts does), resync the workspace, wait the grace,
// regenerate the other key, resync again. No verification, no pacing: a 429 gets the Azure SDK's
// default retries and nothing more. Key values stay in memory and are never printed.
//
// It uses the Azure SDK clients directly (not keyturn's adapters), signed in as keyturn is against
// the emulator: ClientSecretCredential with authorityHost + disableInstanceDiscovery, endpoint =
// armEndpoint, credentialScopes for the classic clients, tlsOptions.ca for the emulator's CA.
//
// Which accounts: those used as a workspace's storage account; the datastores re-registered are
// the AccountKey ones on that account in those workspaces (what the how-to's discovery code finds).
//
// Usage: node bench/sequential.mjs --connection-file f.json [--grace 60s] [--accounts a,b,...]
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { ClientSecretCredential } from "@azure/identity";
import { StorageManagementClient } from "@azure/arm-storage";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";

const ARM_SCOPE = "https://management.azure.com/.default";
/** keyturn's own LRO poll interval (shared/azure/workspaces.ts), so the baseline polls no slower. */
const LRO_POLL_MS = 5_000;

function parseArmId(id) {
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/[^/]+\/[^/]+\/([^/]+)/i.exec(
    id ?? "",
  );
  if (!m) throw new Error(`not an ARM resource id: ${id}`);
  return { subscriptionId: m[1], resourceGroup: m[2], name: m[3] };
}

/** The SDK clients of one connection file, one per subscription, with the SDKs' default retry policy. */
export function connect(connectionFile) {
  const c = JSON.parse(readFileSync(connectionFile, "utf8"));
  const ca = readFileSync(c.caCertFile, "utf8");
  const credential = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
    authorityHost: c.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca },
  });
  const options = {
    endpoint: c.armEndpoint.replace(/\/+$/, ""),
    credentialScopes: [ARM_SCOPE], // arm-machinelearning (core-client)
    credentials: { scopes: [ARM_SCOPE] }, // arm-storage 20 (modular)
    tlsOptions: { ca },
    userAgentOptions: { userAgentPrefix: "keyturn-bench-sequential" },
  };
  const cache = new Map();
  const client = (kind, subscriptionId) => {
    const key = `${kind}|${subscriptionId.toLowerCase()}`;
    if (!cache.has(key)) {
      cache.set(
        key,
        kind === "storage"
          ? new StorageManagementClient(credential, subscriptionId, options)
          : new AzureMachineLearningWorkspaces(credential, subscriptionId, options),
      );
    }
    return cache.get(key);
  };
  return {
    subscriptionIds: c.subscriptionIds,
    storage: (sub) => client("storage", sub),
    ml: (sub) => client("ml", sub),
  };
}

/** The accounts with a workspace on them, and those workspaces, per subscription. */
export async function discover(clients) {
  const accounts = new Map();
  for (const sub of clients.subscriptionIds) {
    for await (const a of clients.storage(sub).storageAccounts.list()) {
      accounts.set(a.id.toLowerCase(), { id: a.id, name: a.name, subscriptionId: sub, workspaces: [] });
    }
    for await (const ws of clients.ml(sub).workspaces.listBySubscription()) {
      const account = ws.storageAccount ? accounts.get(ws.storageAccount.toLowerCase()) : undefined;
      if (account) account.workspaces.push(ws.id);
    }
  }
  return [...accounts.values()].filter((a) => a.workspaces.length > 0);
}

function keyOf(result, keyName) {
  const key = (result.keys ?? []).find((k) => k.keyName?.toLowerCase() === keyName);
  if (!key?.value) throw new Error(`no ${keyName} in the keys returned`);
  return key.value;
}

async function resync(clients, workspaceId) {
  const ws = parseArmId(workspaceId);
  await clients.ml(ws.subscriptionId).workspaces.beginResyncKeysAndWait(ws.resourceGroup, ws.name, {
    updateIntervalInMs: LRO_POLL_MS,
  });
}

/** The seeds' procedure on one account. Returns what it did; throws what the SDK threw. */
export async function rotateAccount(clients, account, graceMs, log = () => {}) {
  const ref = parseArmId(account.id);
  const storage = clients.storage(ref.subscriptionId).storageAccounts;
  const steps = {};
  const time = async (name, work) => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      steps[name] = (steps[name] ?? 0) + (performance.now() - start) / 1000;
    }
  };

  // 1. The workspace's datastores on this account with account-key credentials.
  const datastores = await time("listDatastores", async () => {
    const found = [];
    for (const wsId of account.workspaces) {
      const ws = parseArmId(wsId);
      for await (const ds of clients.ml(ws.subscriptionId).datastores.list(ws.resourceGroup, ws.name)) {
        const p = ds.properties ?? {};
        if (p.credentials?.credentialsType !== "AccountKey") continue;
        if ((p.accountName ?? "").toLowerCase() !== account.name.toLowerCase()) continue;
        found.push({ ws, name: ds.name });
      }
    }
    return found;
  });

  // Which key the consumers hold: the one a datastore (or else the workspace) has; the other is standby.
  const standby = await time("findStandby", async () => {
    const keys = await storage.listKeys(ref.resourceGroup, ref.name);
    let held;
    if (datastores.length > 0) {
      const { ws, name } = datastores[0];
      held = (await clients.ml(ws.subscriptionId).datastores.listSecrets(ws.resourceGroup, ws.name, name))
        .key;
    } else {
      const ws = parseArmId(account.workspaces[0]);
      held = (await clients.ml(ws.subscriptionId).workspaces.listKeys(ws.resourceGroup, ws.name))
        .userStorageKey;
    }
    return held !== undefined && held === keyOf(keys, "key2") ? "key1" : "key2";
  });
  const other = standby === "key1" ? "key2" : "key1";

  // 2. Regenerate the standby key.
  const regenerated = await time("regenerate", () =>
    storage.regenerateKey(ref.resourceGroup, ref.name, { keyName: standby }),
  );
  const newKey = keyOf(regenerated, standby);

  // 3. Re-register every datastore with the new key: GET, then PUT the same properties.
  await time("reregister", async () => {
    for (const { ws, name } of datastores) {
      const dsClient = clients.ml(ws.subscriptionId).datastores;
      const existing = await dsClient.get(ws.resourceGroup, ws.name, name);
      const properties = {
        ...existing.properties,
        credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key: newKey } },
      };
      await dsClient.createOrUpdate(
        ws.resourceGroup,
        ws.name,
        name,
        { properties },
        { skipValidation: false },
      );
    }
  });

  // 4. Resync the workspace.
  await time("resync", async () => {
    for (const wsId of account.workspaces) await resync(clients, wsId);
  });
  log(`  ${account.name}: ${standby} regenerated, ${datastores.length} datastores re-registered; grace`);

  // 5. The same grace keyturn gets.
  await time("grace", () => sleep(graceMs));

  // 6. Regenerate the other key, resync again.
  await time("regenerate", () => storage.regenerateKey(ref.resourceGroup, ref.name, { keyName: other }));
  await time("resync", async () => {
    for (const wsId of account.workspaces) await resync(clients, wsId);
  });
  return { datastores: datastores.length, workspaces: account.workspaces.length, standby, steps };
}

/** Error text without anything that could carry a key: the SDK's message and status only. */
function describeError(e) {
  const status = e?.statusCode ? `HTTP ${e.statusCode}: ` : "";
  return `${status}${String(e?.message ?? e)
    .split("\n")[0]
    .slice(0, 300)}`;
}

/**
 * Runs the procedure on `accountNames` (all accounts with a workspace when omitted), one after the
 * other. An account whose calls fail is recorded and the next one starts, as a person would.
 */
export async function runSequential({ connectionFile, graceSeconds, accountNames, log = () => {} }) {
  const clients = connect(connectionFile);
  const started = performance.now();
  const all = await discover(clients);
  const discoverySeconds = (performance.now() - started) / 1000;
  const wanted = accountNames ? new Set(accountNames.map((n) => n.toLowerCase())) : undefined;
  const accounts = wanted ? all.filter((a) => wanted.has(a.name.toLowerCase())) : all;
  const results = [];
  for (const [i, account] of accounts.entries()) {
    const t0 = performance.now();
    log(`sequential: account ${i + 1}/${accounts.length} ${account.name}`);
    try {
      const done = await rotateAccount(clients, account, graceSeconds * 1000, log);
      results.push({ name: account.name, seconds: (performance.now() - t0) / 1000, ...done });
    } catch (e) {
      log(`  ${account.name}: failed: ${describeError(e)}`);
      results.push({ name: account.name, seconds: (performance.now() - t0) / 1000, error: describeError(e) });
    }
  }
  return {
    discoverySeconds,
    accountsWithWorkspaces: all.length,
    accounts: results,
    wallSeconds: (performance.now() - started) / 1000,
  };
}

function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text).trim());
  if (!m) throw new Error(`not a duration: '${text}' (use e.g. 60s, 5m)`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] ?? "s"];
  return Number(m[1]) * unit;
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] : undefined;
  };
  const connectionFile = opt("--connection-file");
  if (!connectionFile) {
    console.error("usage: node bench/sequential.mjs --connection-file f.json [--grace 60s] [--accounts a,b]");
    process.exit(2);
  }
  const result = await runSequential({
    connectionFile,
    graceSeconds: parseDuration(opt("--grace") ?? "60s"),
    accountNames: opt("--accounts")?.split(","),
    log: (line) => console.error(line),
  });
  console.log(JSON.stringify(result, null, 2));
  process.exitCode = result.accounts.some((a) => a.error) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(describeError(e));
    process.exit(1);
  });
}

export { parseDuration };
