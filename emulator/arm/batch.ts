import { randomBytes } from "node:crypto";
import { AzureError, isObject, jsonBody, type Request } from "../http";
import {
  batchAccountId,
  resourceKey,
  serviceChosenKeyName,
  type BatchAccount,
  type KeyName,
  type StorageAccount,
} from "../model";
import type { EmulatorContext, RouteModule } from "../context";
import { consumerHoldings } from "../consumers";
import { filterByGroup, getResource, page } from "./common";

const TYPE = "Microsoft.Batch/batchAccounts";
const ACCOUNT =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Batch/batchAccounts/{accountName}";

function batchBody(batch: BatchAccount): Record<string, unknown> {
  return {
    id: batch.id,
    name: batch.name,
    type: TYPE,
    location: batch.location,
    identity: { type: "None" },
    properties: {
      // The emulator's Batch data plane for the account once it runs (emulator/batchdata.ts).
      accountEndpoint: batch.accountEndpoint ?? `${batch.name}.${batch.location}.batch.azure.com`,
      provisioningState: "Succeeded",
      poolAllocationMode: "BatchService",
      publicNetworkAccess: "Enabled",
      allowedAuthenticationModes: batch.allowedAuthenticationModes,
      ...(batch.autoStorage
        ? {
            autoStorage: {
              storageAccountId: batch.autoStorage.storageAccountId,
              lastKeySync: batch.autoStorage.lastKeySync.toISOString(),
              authenticationMode: batch.autoStorage.authenticationMode,
            },
          }
        : {}),
      dedicatedCoreQuota: 100,
      lowPriorityCoreQuota: 100,
      poolQuota: 100,
      activeJobAndJobScheduleQuota: 300,
    },
  };
}

/**
 * Which key Batch takes on a sync, by `batchSyncPolicy` (Microsoft does not document the choice, so
 * each plausible one is modelled): key1; the key most of the account's datastores and Key Vault
 * readers hold; or the key auto-storage holds while it works, else key1.
 */
export function batchSyncKey(ctx: EmulatorContext, batch: BatchAccount, account: StorageAccount): KeyName {
  const votes = function* () {
    for (const h of consumerHoldings(ctx.estate)) {
      if (h.id === batch.id || resourceKey(h.storageAccountId) !== resourceKey(account.id)) continue;
      if (h.kind === "datastore" || h.kind === "keyVaultReader") yield h.heldKey;
    }
  };
  return serviceChosenKeyName(
    account,
    ctx.settings.batchSyncPolicy,
    batch.autoStorage?.heldKey ?? "",
    votes,
    ctx.now(),
  );
}

/**
 * Microsoft: listKeys and regenerateKeys "apply only to Batch accounts with allowedAuthenticationModes
 * containing 'SharedKey' ... In this case, getting the keys will fail" (Batch Account - Get Keys). The
 * status and code of that failure are not documented: assumed a 400 naming the reason, as ARM answers
 * an operation the resource's configuration does not allow.
 */
function requireSharedKey(batch: BatchAccount): void {
  if (batch.allowedAuthenticationModes.includes("SharedKey")) return;
  throw new AzureError(
    400,
    "SharedKeyAuthenticationNotAllowed",
    `The Batch account '${batch.name}' does not allow SharedKey authentication (allowedAuthenticationModes: ${batch.allowedAuthenticationModes.join(", ") || "none"}): its keys cannot be listed or regenerated.`,
  );
}

/** The two shared keys, by keyturn's names and Batch's. */
export const BATCH_KEY_NAMES = { key1: "primary", key2: "secondary" } as const;

/**
 * Regenerates one shared key of a Batch account (the regenerateKeys route; the admin API's
 * out-of-band change too): the old value dies at once on the Batch data plane, and the new value goes
 * into the ledger of issued keys, the regeneration into `ctx.regenerations`.
 */
export async function regenerateBatchKey(
  ctx: EmulatorContext,
  batch: BatchAccount,
  key: "key1" | "key2",
  cause: string,
): Promise<void> {
  requireSharedKey(batch);
  const value = randomBytes(64).toString("base64");
  batch.keys[BATCH_KEY_NAMES[key]] = value;
  ctx.issuedKeys.add(value);
  ctx.regenerations.push({
    account: batch.name,
    key,
    at: ctx.now().toISOString(),
    outOfBand: cause.startsWith("out-of-band"),
    batch: true,
  });
  await ctx.changed(cause);
}

function parseBatchKeyName(req: Request): "key1" | "key2" {
  const body = jsonBody(req);
  const keyName = isObject(body) ? body.keyName : undefined;
  if (keyName !== "Primary" && keyName !== "Secondary") {
    throw new AzureError(
      400,
      "InvalidRequestBody",
      `The value of keyName '${String(keyName)}' in the request body is invalid. Expected 'Primary' or 'Secondary'.`,
    );
  }
  return keyName === "Primary" ? "key1" : "key2";
}

export const batchRoutes: RouteModule = (ctx) => {
  const find = (p: Record<string, string>): BatchAccount =>
    getResource(
      ctx.estate.batchAccounts,
      batchAccountId(p.subscriptionId!, p.resourceGroupName!, p.accountName!),
      TYPE,
      p.accountName!,
      p.resourceGroupName!,
    );
  const keys = (b: BatchAccount) => ({
    accountName: b.name,
    primary: b.keys.primary,
    secondary: b.keys.secondary,
  });
  return [
    {
      method: "GET",
      pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.Batch/batchAccounts",
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/read",
      kind: "read",
      operation: "batchAccounts.list",
      handler: (req, p) => ({
        status: 200,
        body: page(
          filterByGroup(ctx.estate.batchAccounts.values(), p.subscriptionId!).map(batchBody),
          req,
          100,
        ),
      }),
    },
    {
      method: "GET",
      pattern:
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Batch/batchAccounts",
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/read",
      kind: "read",
      operation: "batchAccounts.listByResourceGroup",
      handler: (req, p) => ({
        status: 200,
        body: page(
          filterByGroup(ctx.estate.batchAccounts.values(), p.subscriptionId!, p.resourceGroupName).map(
            batchBody,
          ),
          req,
          100,
        ),
      }),
    },
    {
      method: "GET",
      pattern: ACCOUNT,
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/read",
      kind: "read",
      operation: "batchAccounts.get",
      handler: (_req, p) => ({ status: 200, body: batchBody(find(p)) }),
    },
    {
      method: "POST",
      pattern: `${ACCOUNT}/listKeys`,
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/listkeys/action",
      kind: "write",
      operation: "batchAccounts.getKeys",
      handler: (_req, p) => {
        const batch = find(p);
        requireSharedKey(batch);
        return { status: 200, body: keys(batch) };
      },
    },
    {
      method: "POST",
      pattern: `${ACCOUNT}/regenerateKeys`,
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/regeneratekeys/action",
      kind: "write",
      operation: "batchAccounts.regenerateKey",
      handler: async (req, p) => {
        const batch = find(p);
        const key = parseBatchKeyName(req);
        await regenerateBatchKey(ctx, batch, key, `regenerateKeys ${batch.name}/${BATCH_KEY_NAMES[key]}`);
        return { status: 200, body: keys(batch) };
      },
    },
    {
      method: "POST",
      pattern: `${ACCOUNT}/syncAutoStorageKeys`,
      provider: "Microsoft.Batch",
      action: "Microsoft.Batch/batchAccounts/syncAutoStorageKeys/action",
      kind: "write",
      operation: "batchAccounts.synchronizeAutoStorageKeys",
      handler: async (_req, p) => {
        const batch = find(p);
        const auto = batch.autoStorage;
        if (!auto || auto.authenticationMode !== "StorageKeys") {
          throw new AzureError(
            409,
            "AccountNotConfiguredForAutoStorage",
            `The Batch account '${batch.name}' has no auto-storage account that uses storage keys.`,
          );
        }
        const account = ctx.estate.storageAccounts.get(resourceKey(auto.storageAccountId));
        if (!account) {
          throw new AzureError(
            409,
            "AutoStorageAccountNotFound",
            `The auto-storage account of '${batch.name}' was not found.`,
          );
        }
        const pick = batchSyncKey(ctx, batch, account);
        auto.heldKey = account.keys[pick].value;
        auto.lastKeySync = ctx.now();
        await ctx.changed(`syncAutoStorageKeys ${batch.name}`);
        return { status: 204 };
      },
    },
  ];
};
