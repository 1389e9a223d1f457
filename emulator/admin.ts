import { AzureError, Router, isObject, jsonBody } from "./http";
import { findStorageAccountByName, resourceKey } from "./model";
import { consumerHoldings, emulatorFingerprint, heldKeyName } from "./consumers";
import { regenerateStorageKey } from "./arm/storage";
import { regenerateBatchKey } from "./arm/batch";
import { regenerateRegistryPassword } from "./arm/registry";
import type { FaultAction } from "./faults";
import type { Emulator } from "./handle";
import { emptyThrottleCounts } from "./throttle";
import {
  REGISTRY_RESYNC_PICKS,
  RESYNC_POLICIES,
  type EmulatorSettings,
  type RegistryResyncPick,
  type ResyncPolicy,
} from "./context";

/**
 * The emulator's admin API (`/_admin`, loopback only, no auth): fault injection, settings,
 * out-of-band changes (a key regenerated behind keyturn's back, a datastore deleted mid-run),
 * and the outage log. It shows fingerprints, never key values.
 */
export function adminRoutes(emulator: Emulator): Router {
  const { ctx } = emulator;
  const router = new Router();

  router.add("GET", "/_admin/state", () => ({
    status: 200,
    body: {
      storageAccounts: [...ctx.estate.storageAccounts.values()].map((a) => ({
        id: a.id,
        name: a.name,
        tags: a.tags,
        keys: {
          key1: {
            fingerprint: emulatorFingerprint(a.keys.key1.value),
            creationTime: a.keys.key1.creationTime.toISOString(),
          },
          key2: {
            fingerprint: emulatorFingerprint(a.keys.key2.value),
            creationTime: a.keys.key2.creationTime.toISOString(),
          },
        },
      })),
      consumers: consumerHoldings(ctx.estate).map((h) => ({
        kind: h.kind,
        id: h.id,
        name: h.name,
        // The resource whose keys it holds: a storage account, Batch account or container registry.
        resource: h.resource,
        storageAccountName: h.storageAccountName,
        // key1/key2; a Batch account's Primary/Secondary and a registry's password/password2 likewise.
        heldKeyName: heldKeyName(ctx.estate, h) ?? null,
        heldKeyFingerprint: emulatorFingerprint(h.heldKey),
      })),
    },
  }));

  router.add("GET", "/_admin/outages", () => ({
    status: 200,
    body: {
      outages: emulator.outages.all(),
      probeFailures: emulator.outages.probeFailures,
      probes: emulator.jobs.probes,
    },
  }));
  router.add("DELETE", "/_admin/outages", () => {
    emulator.outages.clear();
    return { status: 204 };
  });
  router.add("POST", "/_admin/consumers/tick", async () => {
    await emulator.jobs.tick();
    return {
      status: 200,
      body: { probes: emulator.jobs.probes, probeFailures: emulator.outages.probeFailures.length },
    };
  });

  router.add("GET", "/_admin/settings", () => ({ status: 200, body: ctx.settings }));
  router.add("PATCH", "/_admin/settings", (req) => {
    const body = jsonBody(req);
    if (!isObject(body))
      throw new AzureError(400, "InvalidRequestContent", "Send a JSON object of settings.");
    applySettings(ctx.settings, body);
    return { status: 200, body: ctx.settings };
  });

  router.add("GET", "/_admin/faults", () => ({ status: 200, body: emulator.faults.rules }));
  router.add("POST", "/_admin/faults", (req) => {
    const body = jsonBody(req);
    if (!isObject(body) || !isObject(body.action) || typeof body.action.type !== "string") {
      throw new AzureError(
        400,
        "InvalidRequestContent",
        'A fault needs {"action":{"type":"status"|"timeout"|"drop"|"hold"|"failLro", ...}} and optional path, method, operation, count.',
      );
    }
    try {
      const rule = emulator.faults.add({
        path: typeof body.path === "string" ? body.path : undefined,
        method: typeof body.method === "string" ? body.method : undefined,
        operation: typeof body.operation === "string" ? body.operation : undefined,
        count: typeof body.count === "number" ? body.count : 1,
        action: body.action as unknown as FaultAction,
      });
      return { status: 201, body: rule };
    } catch (e) {
      throw new AzureError(400, "InvalidRequestContent", `Invalid fault rule: ${(e as Error).message}`);
    }
  });
  router.add("DELETE", "/_admin/faults", () => {
    emulator.faults.clear();
    return { status: 204 };
  });
  router.add("GET", "/_admin/holds", () => ({ status: 200, body: emulator.faults.held }));
  router.add("POST", "/_admin/holds/release", (req) => {
    const body = req.rawBody.trim() === "" ? {} : jsonBody(req);
    const id = isObject(body) && typeof body.id === "string" ? body.id : undefined;
    return { status: 200, body: emulator.faults.release(id) };
  });

  router.add("POST", "/_admin/throttle/drain", (req) => {
    const body = jsonBody(req);
    const sub = isObject(body) && typeof body.subscriptionId === "string" ? body.subscriptionId : undefined;
    const kind = isObject(body) && body.kind === "read" ? "read" : "write";
    const clientId = isObject(body) && typeof body.clientId === "string" ? body.clientId : undefined;
    if (!sub)
      throw new AzureError(
        400,
        "InvalidRequestContent",
        "Send {subscriptionId, kind: read|write, clientId?}.",
      );
    // ARM's buckets are per principal: without a clientId, every principal's bucket is drained.
    const principals = [...ctx.identity.principals.values()].filter(
      (p) => clientId === undefined || p.clientId.toLowerCase() === clientId.toLowerCase(),
    );
    if (principals.length === 0)
      throw new AzureError(404, "PrincipalNotFound", `No principal with client id '${clientId ?? ""}'.`);
    emulator.throttle.drain(
      sub,
      kind,
      principals.map((p) => p.objectId),
    );
    return { status: 204 };
  });

  // The bench's view of throttling: the 429 count survives the request log's trimming.
  router.add("GET", "/_admin/throttle", () => ({
    status: 200,
    body: {
      throttling: ctx.settings.throttling,
      storageRpLimits: ctx.settings.storageRpLimits,
      ...emulator.throttled,
    },
  }));

  router.add("POST", "/_admin/storageAccounts/{name}/regenerateKey", async (req, p) => {
    const account = findStorageAccountByName(ctx.estate, p.name!);
    if (!account)
      throw new AzureError(404, "ResourceNotFound", `No storage account '${p.name!}' in the estate.`);
    const body = jsonBody(req);
    const keyName = isObject(body) ? body.keyName : undefined;
    if (keyName !== "key1" && keyName !== "key2")
      throw new AzureError(400, "InvalidRequestContent", 'Send {"keyName":"key1"|"key2"}.');
    await regenerateStorageKey(ctx, account, keyName, `out-of-band regenerateKey ${account.name}/${keyName}`);
    return { status: 204 };
  });

  const findBatch = (name: string) => {
    const batch = [...ctx.estate.batchAccounts.values()].find(
      (b) => b.name.toLowerCase() === name.toLowerCase(),
    );
    if (!batch) throw new AzureError(404, "ResourceNotFound", `No Batch account '${name}' in the estate.`);
    return batch;
  };
  // A Batch shared key regenerated behind keyturn's back (key1 = Primary, key2 = Secondary).
  router.add("POST", "/_admin/batchAccounts/{name}/regenerateKeys", async (req, p) => {
    const batch = findBatch(p.name!);
    const body = jsonBody(req);
    const keyName = isObject(body) ? body.keyName : undefined;
    if (keyName !== "key1" && keyName !== "key2")
      throw new AzureError(400, "InvalidRequestContent", 'Send {"keyName":"key1"|"key2"}.');
    await regenerateBatchKey(ctx, batch, keyName, `out-of-band regenerateKeys ${batch.name}/${keyName}`);
    return { status: 204 };
  });
  // An account turned Entra ID only (or back): what ARM's batchAccounts update does to the property.
  // Its shared keys stop (or start) working for those who hold them: the outage log sees it.
  router.add("PATCH", "/_admin/batchAccounts/{name}", async (req, p) => {
    const batch = findBatch(p.name!);
    const body = jsonBody(req);
    const modes = isObject(body) ? body.allowedAuthenticationModes : undefined;
    const known = ["SharedKey", "AAD", "TaskAuthenticationToken"] as const;
    if (!Array.isArray(modes) || !modes.every((m) => known.includes(m as (typeof known)[number])))
      throw new AzureError(
        400,
        "InvalidRequestContent",
        `Send {"allowedAuthenticationModes": [...]} with any of ${known.join(", ")}.`,
      );
    batch.allowedAuthenticationModes = [...new Set(modes as (typeof known)[number][])];
    await ctx.changed(
      `out-of-band allowedAuthenticationModes ${batch.name}: ${batch.allowedAuthenticationModes.join(", ")}`,
    );
    return {
      status: 200,
      body: { name: batch.name, allowedAuthenticationModes: batch.allowedAuthenticationModes },
    };
  });

  router.add("POST", "/_admin/registries/{name}/regenerateCredential", async (req, p) => {
    const registry = [...ctx.estate.registries.values()].find(
      (r) => r.name.toLowerCase() === p.name!.toLowerCase(),
    );
    if (!registry)
      throw new AzureError(404, "ResourceNotFound", `No container registry '${p.name!}' in the estate.`);
    const body = jsonBody(req);
    const name = isObject(body) ? body.name : undefined;
    if (name !== "password" && name !== "password2")
      throw new AzureError(400, "InvalidRequestContent", 'Send {"name":"password"|"password2"}.');
    await regenerateRegistryPassword(
      ctx,
      registry,
      name,
      `out-of-band regenerateCredential ${registry.name}/${name}`,
    );
    return { status: 204 };
  });

  router.add("DELETE", "/_admin/workspaces/{workspace}/datastores/{name}", async (_req, p) => {
    const ws = [...ctx.estate.workspaces.values()].find(
      (w) => w.name.toLowerCase() === p.workspace!.toLowerCase(),
    );
    if (!ws?.datastores.delete(p.name!.toLowerCase())) {
      throw new AzureError(
        404,
        "ResourceNotFound",
        `No datastore '${p.name!}' in workspace '${p.workspace!}'.`,
      );
    }
    await ctx.changed(`out-of-band delete datastore ${ws.name}/${p.name!}`);
    return { status: 204 };
  });

  router.add("POST", "/_admin/principals", (req) => {
    const body = jsonBody(req);
    if (!isObject(body) || typeof body.displayName !== "string" || !Array.isArray(body.actions)) {
      throw new AzureError(
        400,
        "InvalidRequestContent",
        'Send {"displayName", "actions": [...], "dataActions"?: [...], "scope"?}.',
      );
    }
    const principal = emulator.addPrincipal(
      body.displayName,
      {
        Name: `custom-${body.displayName}-${resourceKey(String(Date.now()))}`,
        Actions: body.actions.map(String),
        DataActions: Array.isArray(body.dataActions) ? body.dataActions.map(String) : [],
      },
      typeof body.scope === "string" ? body.scope : undefined,
    );
    return {
      status: 201,
      body: {
        clientId: principal.clientId,
        clientSecret: principal.clientSecret,
        objectId: principal.objectId,
      },
    };
  });

  router.add("GET", "/_admin/requests", () => ({ status: 200, body: emulator.requestLog }));
  // Between runs on one emulator: the next GET /requests and GET /throttle count from here.
  router.add("DELETE", "/_admin/requests", () => {
    emulator.requestLog.length = 0;
    Object.assign(emulator.throttled, emptyThrottleCounts());
    return { status: 204 };
  });
  return router;
}

/** The longest delay the duration settings take: a year, in seconds. */
export const MAX_SETTING_SECONDS = 365 * 86_400;

/**
 * The settings `body` makes of `current`, and what is wrong with it (each bad field and what is
 * allowed; empty when all is well). `current` is not changed.
 */
export function mergeSettings(
  current: EmulatorSettings,
  body: Record<string, unknown>,
): { settings: EmulatorSettings; problems: string[] } {
  const problems: string[] = [];
  const settings = { ...current };
  for (const [key, value] of Object.entries(body)) {
    switch (key) {
      case "resyncPolicy":
      case "batchSyncPolicy":
        if (RESYNC_POLICIES.includes(value as ResyncPolicy)) settings[key] = value as ResyncPolicy;
        else problems.push(`${key} must be 'key1', 'consumers' or 'keepIfLive'`);
        break;
      case "registryResyncPick":
        if (REGISTRY_RESYNC_PICKS.includes(value as RegistryResyncPick))
          settings.registryResyncPick = value as RegistryResyncPick;
        else
          problems.push(
            `registryResyncPick must be ${REGISTRY_RESYNC_PICKS.map((p) => `'${p}'`).join(", ")}`,
          );
        break;
      case "latency":
        if (value === "off" || value === "realistic") settings.latency = value;
        else problems.push("latency must be 'off' or 'realistic'");
        break;
      case "throttling":
      case "storageRpLimits":
      case "resyncRewritesDefaultDatastores":
      case "keyCreationTimeKnown":
        if (typeof value === "boolean") settings[key] = value;
        else problems.push(`${key} must be a boolean`);
        break;
      case "resyncPolls":
      case "lroRetryAfterSeconds":
      case "latencyScale":
        if (typeof value === "number" && Number.isFinite(value) && value >= 0) settings[key] = value;
        else problems.push(`${key} must be a number >= 0`);
        break;
      case "keyPropagationSeconds":
      case "workspaceAutoSyncSeconds":
      case "consumerKeyCacheSeconds":
        if (typeof value === "number" && value >= 0 && value <= MAX_SETTING_SECONDS) settings[key] = value;
        else problems.push(`${key} must be a number of seconds from 0 to ${MAX_SETTING_SECONDS}`);
        break;
      default:
        problems.push(`unknown setting '${key}' (the settings are ${Object.keys(current).join(", ")})`);
    }
  }
  return { settings, problems };
}

/** Validates every setting before changing any, so a bad request changes nothing. */
function applySettings(current: EmulatorSettings, body: Record<string, unknown>): void {
  const { settings, problems } = mergeSettings(current, body);
  if (problems.length > 0) throw new AzureError(400, "InvalidSettings", problems.join("; "));
  Object.assign(current, settings);
}
