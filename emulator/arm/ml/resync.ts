/**
 * Keys the service picks itself: a workspace's resyncKeys (a Location-polled long-running operation,
 * its status under `locations/workspaceOperationsStatus`), the workspace auto-sync after a
 * regeneration, and their effect on the default datastores.
 */
import { randomUUID } from "node:crypto";
import type { ArmRoute, EmulatorContext, ResyncPolicy } from "../../context";
import { AzureError, type Request, type Response } from "../../http";
import {
  resourceKey,
  serviceChosenKeyName,
  type Datastore,
  type Estate,
  type StorageAccount,
  type Workspace,
} from "../../model";
import { baseUrl } from "../common";
import { resyncRegistryPassword } from "../registry";
import { recordChange } from "./authorship";
import {
  LRO_FAILURE_STATUS,
  MAX_OPERATIONS,
  ML_ACTIONS,
  ML_API_VERSION,
  ML_PROVIDER,
  OPERATION_STATUS,
  WS,
  mlRoute,
  workspaceOf,
} from "./common";

/**
 * The key a resync makes the workspace hold. Azure reads the account's current keys and does not
 * document which it picks: "key1" always takes key1; "consumers" takes the live key held by most
 * of the workspace's AccountKey datastores on its own storage account (a tie or none: key1);
 * "keepIfLive" keeps the key the workspace holds while it works (live and propagated), else key1.
 */
export function chooseResyncKey(
  estate: Estate,
  ws: Workspace,
  policy: ResyncPolicy,
  at: Date,
): string | undefined {
  const account = estate.storageAccounts.get(resourceKey(ws.storageAccountId));
  if (!account) return undefined;
  const votes = function* () {
    for (const ds of accountKeyDatastoresOn(ws, account)) yield ds.credentials.secrets.key;
  };
  return account.keys[serviceChosenKeyName(account, policy, ws.userStorageKey, votes, at)].value;
}

interface ResyncOperation {
  id: string;
  subscriptionId: string;
  workspaceKey: string;
  workspaceName: string;
  resourceGroup: string;
  location: string;
  pollsLeft: number;
  fail: boolean;
  /** Set once the operation reached its end: the response every later poll repeats. */
  outcome?: Response;
  completing?: Promise<Response>;
}

function operationStatusUrl(req: Request, op: ResyncOperation): string {
  return (
    `${baseUrl(req)}/subscriptions/${op.subscriptionId}/providers/${ML_PROVIDER}/locations/${op.location}` +
    `/workspaceOperationsStatus/${op.id}?api-version=${ML_API_VERSION}&type=location`
  );
}

function lroFailure(op: ResyncOperation, code: string, message: string): Response {
  return {
    status: code === "ResourceNotFound" ? 404 : LRO_FAILURE_STATUS,
    body: { error: { code, message: `Resync keys for workspace '${op.workspaceName}' failed: ${message}` } },
  };
}

type AccountKeyDatastore = Datastore & { credentials: { credentialsType: "AccountKey" } };

/** The workspace's AccountKey datastores on this storage account. */
function* accountKeyDatastoresOn(ws: Workspace, account: StorageAccount): Generator<AccountKeyDatastore> {
  for (const ds of ws.datastores.values()) {
    if (ds.credentials.credentialsType !== "AccountKey") continue;
    if (ds.accountName.toLowerCase() !== account.name.toLowerCase()) continue;
    yield ds as AccountKeyDatastore;
  }
}

/** The default datastores a resync rewrites under `resyncRewritesDefaultDatastores`. */
const DEFAULT_DATASTORE_NAMES = new Set(["workspaceblobstore", "workspacefilestore"]);

/** Who systemData names for a change the service made itself (a resync rewriting a datastore). */
const SERVICE_AUTHOR = { by: "Microsoft.MachineLearningServices", type: "Application" };

/**
 * A workspace takes a key by its resync policy (a resyncKeys operation completing, or the workspace
 * syncing itself): `userStorageKey`, and under `resyncRewritesDefaultDatastores` its default
 * datastores on its own storage account too. False when its storage account is gone.
 */
export async function resyncWorkspace(ctx: EmulatorContext, ws: Workspace, cause: string): Promise<boolean> {
  const account = ctx.estate.storageAccounts.get(resourceKey(ws.storageAccountId));
  const key = chooseResyncKey(ctx.estate, ws, ctx.settings.resyncPolicy, ctx.now());
  if (!account || key === undefined) return false;
  ws.userStorageKey = key;
  // It re-reads its container registry's admin passwords too, and takes one by `registryResyncPick`.
  resyncRegistryPassword(ctx, ws);
  if (ctx.settings.resyncRewritesDefaultDatastores) {
    for (const ds of accountKeyDatastoresOn(ws, account)) {
      if (!DEFAULT_DATASTORE_NAMES.has(ds.name.toLowerCase())) continue;
      ds.credentials.secrets.key = key;
      recordChange(ds, true, ctx.now(), SERVICE_AUTHOR);
    }
  }
  await ctx.changed(cause);
  return true;
}

/**
 * Under `workspaceAutoSyncSeconds`: that long after a key of the account was regenerated, every
 * workspace on the account resyncs itself (Azure's "the workspace picks the new key up after about an
 * hour"). Turning the setting off before then cancels it.
 */
export function scheduleWorkspaceAutoSync(
  ctx: EmulatorContext,
  account: StorageAccount,
  after: string,
): void {
  const seconds = ctx.settings.workspaceAutoSyncSeconds;
  if (seconds <= 0) return;
  ctx.schedule(seconds * 1000, async () => {
    if (ctx.settings.workspaceAutoSyncSeconds <= 0) return;
    for (const ws of ctx.estate.workspaces.values()) {
      if (resourceKey(ws.storageAccountId) !== resourceKey(account.id)) continue;
      await resyncWorkspace(ctx, ws, `workspace auto-sync ${ws.name} (${seconds}s after ${after})`);
    }
  });
}

export function resyncRoutes(ctx: EmulatorContext): ArmRoute[] {
  const operations = new Map<string, ResyncOperation>();

  const completeResync = async (op: ResyncOperation): Promise<Response> => {
    if (op.fail)
      return lroFailure(
        op,
        "InternalServerError",
        "the service could not complete the operation. Retry later.",
      );
    const ws = ctx.estate.workspaces.get(op.workspaceKey);
    if (!ws) return lroFailure(op, "ResourceNotFound", "the workspace no longer exists.");
    if (!(await resyncWorkspace(ctx, ws, "resyncKeys")))
      return lroFailure(op, "InternalServerError", "the workspace's storage account could not be found.");
    return { status: 200 };
  };

  const pollResync = async (req: Request, op: ResyncOperation): Promise<Response> => {
    if (op.outcome) return op.outcome;
    if (op.pollsLeft > 0) {
      op.pollsLeft--;
      return {
        status: 202,
        headers: {
          location: operationStatusUrl(req, op),
          "retry-after": String(ctx.settings.lroRetryAfterSeconds),
        },
      };
    }
    op.completing ??= completeResync(op);
    op.outcome = await op.completing;
    return op.outcome;
  };

  const startResync = (req: Request, p: Record<string, string>): Response => {
    const ws = workspaceOf(ctx, p);
    const op: ResyncOperation = {
      id: randomUUID(),
      subscriptionId: ws.subscriptionId,
      workspaceKey: resourceKey(ws.id),
      workspaceName: ws.name,
      resourceGroup: ws.resourceGroup,
      location: ws.location,
      pollsLeft: Math.max(0, ctx.settings.resyncPolls),
      fail: ctx.takeLroFailure("resyncKeys"),
    };
    if (operations.size >= MAX_OPERATIONS) {
      const oldest = operations.keys().next();
      if (!oldest.done) operations.delete(oldest.value);
    }
    operations.set(op.id, op);
    return {
      status: 202,
      headers: {
        location: operationStatusUrl(req, op),
        "retry-after": String(ctx.settings.lroRetryAfterSeconds),
      },
    };
  };

  return [
    mlRoute({
      method: "POST",
      pattern: `${WS}/{workspaceName}/resyncKeys`,
      action: ML_ACTIONS.workspaceResyncKeys,
      kind: "write",
      operation: "workspaces.resyncKeys",
      handler: startResync,
    }),
    mlRoute({
      method: "GET",
      pattern: OPERATION_STATUS,
      action: ML_ACTIONS.workspaceOperationStatusRead,
      kind: "read",
      operation: "workspaces.operationStatus",
      handler: async (req, p) => {
        const op = operations.get(p.operationId ?? "");
        if (!op || op.subscriptionId.toLowerCase() !== (p.subscriptionId ?? "").toLowerCase()) {
          throw new AzureError(404, "NotFound", `The operation '${p.operationId ?? ""}' was not found.`);
        }
        return pollResync(req, op);
      },
    }),
  ];
}
