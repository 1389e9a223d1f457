import type { Request } from "../http";
import { classicStorageAccountId, type StorageAccount } from "../model";
import type { EmulatorContext, RouteModule } from "../context";
import { filterByGroup, getResource, page } from "./common";

/**
 * ARM's view of classic storage accounts (`Microsoft.ClassicStorage/storageAccounts`): list and get.
 * Their keys are Service Management's (emulator/servicemanagement.ts). No Swagger describes the type;
 * the body has the properties ARM shows for it (accountType, endpoints, geo regions, creationTime).
 */
const TYPE = "Microsoft.ClassicStorage/storageAccounts";
const ACCOUNT =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ClassicStorage/storageAccounts/{accountName}";

/** The actions Azure checks for classic accounts: ARM's read, and Service Management's key operations. */
export const CLASSIC_ACTIONS = {
  read: "Microsoft.ClassicStorage/storageAccounts/read",
  listKeys: "Microsoft.ClassicStorage/storageAccounts/listKeys/action",
  regenerateKey: "Microsoft.ClassicStorage/storageAccounts/regenerateKey/action",
} as const;

/** The api-versions ARM serves the type with. */
export const CLASSIC_STORAGE_API_VERSIONS = [
  "2014-06-01",
  "2015-06-01",
  "2015-12-01",
  "2016-04-01",
  "2016-11-01",
];

export function classicAccounts(ctx: EmulatorContext): StorageAccount[] {
  return [...ctx.estate.storageAccounts.values()].filter((a) => a.classic);
}

function classicAccountBody(ctx: EmulatorContext, account: StorageAccount): Record<string, unknown> {
  const endpoints = [
    ctx.dataPlane.blobEndpoint(account.name),
    ctx.dataPlane.queueEndpoint(account.name),
    ctx.dataPlane.tableEndpoint(account.name),
  ].filter((e): e is string => e !== undefined);
  return {
    id: account.id,
    name: account.name,
    type: TYPE,
    location: account.location,
    properties: {
      provisioningState: "Succeeded",
      status: "Created",
      // Blob, queue, table (file: Azurite has none), in Azure's order.
      endpoints,
      accountType: "Standard-GRS",
      geoPrimaryRegion: account.location,
      statusOfPrimaryRegion: "Available",
      creationTime: account.keys.key1.creationTime.toISOString(),
    },
  };
}

export const classicRoutes: RouteModule = (ctx) => {
  const listed = (items: StorageAccount[], req: Request) => ({
    status: 200,
    body: page(
      items.map((a) => classicAccountBody(ctx, a)),
      req,
      100,
    ),
  });
  const common = {
    provider: "Microsoft.ClassicStorage",
    action: CLASSIC_ACTIONS.read,
    kind: "read",
  } as const;
  return [
    {
      ...common,
      method: "GET",
      pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.ClassicStorage/storageAccounts",
      operation: "classicStorageAccounts.list",
      handler: (req, p) => listed(filterByGroup(classicAccounts(ctx), p.subscriptionId!), req),
    },
    {
      ...common,
      method: "GET",
      pattern:
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ClassicStorage/storageAccounts",
      operation: "classicStorageAccounts.listByResourceGroup",
      handler: (req, p) =>
        listed(filterByGroup(classicAccounts(ctx), p.subscriptionId!, p.resourceGroupName), req),
    },
    {
      ...common,
      method: "GET",
      pattern: ACCOUNT,
      operation: "classicStorageAccounts.get",
      handler: (_req, p) => ({
        status: 200,
        body: classicAccountBody(
          ctx,
          getResource(
            ctx.estate.storageAccounts,
            classicStorageAccountId(p.subscriptionId!, p.resourceGroupName!, p.accountName!),
            TYPE,
            p.accountName!,
            p.resourceGroupName!,
          ),
        ),
      }),
    },
  ];
};
