import { AzureError, isObject, jsonBody, type Request } from "../http";
import { newStorageKey, resourceKey, storageAccountId, type KeyName, type StorageAccount } from "../model";
import type { EmulatorContext, RouteModule } from "../context";
import { filterByGroup, getResource, page } from "./common";
import { scheduleWorkspaceAutoSync } from "./ml/resync";

const TYPE = "Microsoft.Storage/storageAccounts";
const ACCOUNT =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Storage/storageAccounts/{accountName}";

export function storageAccountBody(ctx: EmulatorContext, account: StorageAccount): Record<string, unknown> {
  const blob = ctx.dataPlane.blobEndpoint(account.name);
  // Older accounts never recorded when their keys were made: Azure shows nulls.
  const known = ctx.settings.keyCreationTimeKnown;
  return {
    id: account.id,
    name: account.name,
    type: TYPE,
    location: account.location,
    tags: account.tags,
    kind: account.kind,
    sku: { name: "Standard_LRS", tier: "Standard" },
    properties: {
      provisioningState: "Succeeded",
      creationTime: account.keys.key1.creationTime.toISOString(),
      keyCreationTime: {
        key1: known ? account.keys.key1.creationTime.toISOString() : null,
        key2: known ? account.keys.key2.creationTime.toISOString() : null,
      },
      ...(account.keyExpirationPeriodInDays !== undefined
        ? { keyPolicy: { keyExpirationPeriodInDays: account.keyExpirationPeriodInDays } }
        : {}),
      ...(account.sasExpirationPeriod !== undefined
        ? { sasPolicy: { sasExpirationPeriod: account.sasExpirationPeriod, expirationAction: "Log" } }
        : {}),
      primaryEndpoints: {
        blob,
        // Azurite serves ADLS Gen2 accounts through the blob endpoint; there is no dfs or file service.
        dfs: account.isHnsEnabled ? blob : undefined,
        table: ctx.dataPlane.tableEndpoint(account.name),
        queue: ctx.dataPlane.queueEndpoint(account.name),
      },
      primaryLocation: account.location,
      statusOfPrimary: "available",
      isHnsEnabled: account.isHnsEnabled,
      allowSharedKeyAccess: account.allowSharedKeyAccess,
      minimumTlsVersion: "TLS1_2",
      supportsHttpsTrafficOnly: true,
      encryption: {
        keySource: "Microsoft.Storage",
        services: { blob: { enabled: true, keyType: "Account" } },
      },
    },
  };
}

/** listKeys and regenerateKey: a new value shows at once, propagated or not (as in Azure). */
function keysBody(ctx: EmulatorContext, account: StorageAccount): { keys: unknown[] } {
  return {
    keys: (["key1", "key2"] as const).map((keyName) => ({
      keyName,
      value: account.keys[keyName].value,
      permissions: "FULL",
      ...(ctx.settings.keyCreationTimeKnown
        ? { creationTime: account.keys[keyName].creationTime.toISOString() }
        : {}),
    })),
  };
}

function parseKeyName(req: Request): KeyName {
  const body = jsonBody(req);
  const keyName = isObject(body) ? body.keyName : undefined;
  if (typeof keyName !== "string") {
    throw new AzureError(
      400,
      "InvalidRequestContent",
      "The request content was invalid: 'keyName' is required (key1 or key2).",
    );
  }
  const lower = keyName.toLowerCase();
  if (lower !== "key1" && lower !== "key2") {
    throw new AzureError(
      400,
      "InvalidValuesForRequestParameters",
      `Values for request parameters are invalid: keyName '${keyName}'. Use key1 or key2.`,
    );
  }
  return lower;
}

/**
 * Regenerates one key (also used by the admin API to change a key behind keyturn's back). The old
 * value dies at once; under `keyPropagationSeconds` the new one works only that long after, and under
 * `workspaceAutoSyncSeconds` the account's workspaces resync themselves that long after.
 */
export async function regenerateStorageKey(
  ctx: EmulatorContext,
  account: StorageAccount,
  keyName: KeyName,
  cause: string,
): Promise<void> {
  const now = ctx.now();
  const propagationMs = ctx.settings.keyPropagationSeconds * 1000;
  account.keys[keyName] = {
    value: newStorageKey(),
    creationTime: now,
    ...(propagationMs > 0 ? { propagatedAt: new Date(now.getTime() + propagationMs) } : {}),
  };
  ctx.issuedKeys.add(account.keys[keyName].value);
  ctx.regenerations.push({
    account: account.name,
    key: keyName,
    at: ctx.now().toISOString(),
    outOfBand: cause.startsWith("out-of-band"),
  });
  await ctx.changed(cause);
  scheduleWorkspaceAutoSync(ctx, account, cause);
}

/**
 * The region a subscription-wide list counts in. Azure applies the Storage RP's limits "per region of
 * the resource in the request" and a list names none, so the emulator counts lists per subscription.
 */
export const LIST_REGION = "(subscription)";

export const storageRoutes: RouteModule = (ctx) => {
  // The Storage RP counts a call in its account's region; a call for no account has none to count in.
  const regionOf = (p: Record<string, string>): string | undefined =>
    ctx.estate.storageAccounts.get(
      resourceKey(storageAccountId(p.subscriptionId ?? "", p.resourceGroupName ?? "", p.accountName ?? "")),
    )?.location;
  const listing = { kind: "list", region: () => LIST_REGION } as const;
  // Classic accounts live under Microsoft.ClassicStorage (arm/classic.ts): never listed or served here.
  const armAccounts = () => [...ctx.estate.storageAccounts.values()].filter((a) => !a.classic);
  const find = (p: Record<string, string>): StorageAccount =>
    getResource(
      ctx.estate.storageAccounts,
      storageAccountId(p.subscriptionId!, p.resourceGroupName!, p.accountName!),
      TYPE,
      p.accountName!,
      p.resourceGroupName!,
    );
  const list = (req: Request, items: StorageAccount[]) => ({
    status: 200,
    body: page(
      items.map((a) => storageAccountBody(ctx, a)),
      req,
      100,
    ),
  });
  return [
    {
      method: "GET",
      pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.Storage/storageAccounts",
      provider: "Microsoft.Storage",
      action: "Microsoft.Storage/storageAccounts/read",
      kind: "read",
      storageRp: listing,
      operation: "storageAccounts.list",
      handler: (req, p) => list(req, filterByGroup(armAccounts(), p.subscriptionId!)),
    },
    {
      method: "GET",
      pattern:
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Storage/storageAccounts",
      provider: "Microsoft.Storage",
      action: "Microsoft.Storage/storageAccounts/read",
      kind: "read",
      storageRp: listing,
      operation: "storageAccounts.listByResourceGroup",
      handler: (req, p) => list(req, filterByGroup(armAccounts(), p.subscriptionId!, p.resourceGroupName)),
    },
    {
      method: "GET",
      pattern: ACCOUNT,
      provider: "Microsoft.Storage",
      action: "Microsoft.Storage/storageAccounts/read",
      kind: "read",
      storageRp: { kind: "read", region: regionOf },
      operation: "storageAccounts.getProperties",
      handler: (_req, p) => ({ status: 200, body: storageAccountBody(ctx, find(p)) }),
    },
    {
      method: "POST",
      pattern: `${ACCOUNT}/listKeys`,
      provider: "Microsoft.Storage",
      action: "Microsoft.Storage/storageAccounts/listKeys/action",
      kind: "write",
      // Microsoft does not say whether the Storage RP counts listKeys as a read or a write: assume the worse.
      storageRp: { kind: "write", region: regionOf },
      operation: "storageAccounts.listKeys",
      handler: (_req, p) => ({ status: 200, body: keysBody(ctx, find(p)) }),
    },
    {
      method: "POST",
      pattern: `${ACCOUNT}/regenerateKey`,
      provider: "Microsoft.Storage",
      action: "Microsoft.Storage/storageAccounts/regeneratekey/action",
      kind: "write",
      storageRp: { kind: "write", region: regionOf },
      operation: "storageAccounts.regenerateKey",
      handler: async (req, p) => {
        const account = find(p);
        const keyName = parseKeyName(req);
        await regenerateStorageKey(ctx, account, keyName, `regenerateKey ${account.name}/${keyName}`);
        return { status: 200, body: keysBody(ctx, account) };
      },
    },
  ];
};
