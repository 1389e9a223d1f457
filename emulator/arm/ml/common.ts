/** What every Microsoft.MachineLearningServices route shares: names, lookups, errors and paging. */
import type { ArmRoute, EmulatorContext } from "../../context";
import { AzureError, type Request, type Response } from "../../http";
import { resourceKey, workspaceId, type Datastore, type Estate, type Workspace } from "../../model";
import { baseUrl, resourceNotFound } from "../common";

export const ML_API_VERSION = "2022-10-01";
export const ML_PROVIDER = "Microsoft.MachineLearningServices";
export const WORKSPACE_TYPE = "Microsoft.MachineLearningServices/workspaces";
export const DATASTORE_TYPE = "Microsoft.MachineLearningServices/workspaces/datastores";
/** Workspaces per list page (Azure does not document its page size). */
export const WORKSPACE_PAGE_SIZE = 100;
/** Datastores per page when the client sends no `count` (the SDK always sends 30). */
export const DEFAULT_DATASTORE_PAGE_SIZE = 30;
/** A resync that fails answers its Location poll with this status and `{error:{code,message}}`. */
export const LRO_FAILURE_STATUS = 500;

export const ML_ACTIONS = {
  workspaceRead: "Microsoft.MachineLearningServices/workspaces/read",
  workspaceListKeys: "Microsoft.MachineLearningServices/workspaces/listKeys/action",
  workspaceResyncKeys: "Microsoft.MachineLearningServices/workspaces/resynckeys/action",
  datastoreRead: "Microsoft.MachineLearningServices/workspaces/datastores/read",
  datastoreWrite: "Microsoft.MachineLearningServices/workspaces/datastores/write",
  datastoreListSecrets: "Microsoft.MachineLearningServices/workspaces/datastores/listsecrets/action",
  datastoreDelete: "Microsoft.MachineLearningServices/workspaces/datastores/delete",
  /**
   * Polling a resync: its Location is `…/providers/Microsoft.MachineLearningServices/locations/{location}/
   * workspaceOperationsStatus/{id}`, a subscription-level URL outside the workspace. ARM authorizes a GET
   * by the URL's own resource type (`locations/workspaceOperationsStatus`) over the URL's own scope, and
   * Microsoft lists the operation: "Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/
   * read — Gets the status of a particular workspace operation" (Azure permissions for AI + machine
   * learning, https://learn.microsoft.com/azure/role-based-access-control/permissions/ai-machine-learning).
   * The ARM RPC contract warns that operation results and statuses "typically have different RBAC
   * restrictions" than the action that started them (azure-resource-manager-rpc, async-api-reference.md).
   */
  workspaceOperationStatusRead: "Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/read",
} as const;

export const WS =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces";
export const DS = `${WS}/{workspaceName}/datastores`;
export const OPERATION_STATUS =
  "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/workspaceOperationsStatus/{operationId}";
export const DATASTORE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$/;
export const MAX_OPERATIONS = 10_000;

// ---------------------------------------------------------------------------------------------
// Lookups and errors

/** The workspace named in a request (names are case-insensitive), or ARM's 404. */
export function findWorkspace(
  estate: Estate,
  subscriptionId: string,
  resourceGroup: string,
  name: string,
): Workspace {
  const ws = estate.workspaces.get(resourceKey(workspaceId(subscriptionId, resourceGroup, name)));
  if (!ws) throw resourceNotFound(WORKSPACE_TYPE, name, resourceGroup);
  return ws;
}

/** A datastore of a workspace (names are case-insensitive), or ARM's 404. */
export function findDatastore(ws: Workspace, name: string, resourceGroup: string): Datastore {
  const ds = ws.datastores.get(name.toLowerCase());
  if (!ds) throw resourceNotFound(`${WORKSPACE_TYPE}/${ws.name}/datastores`, name, resourceGroup);
  return ds;
}

/** AML's 400 for a request body it cannot accept; `target` names the offending field. */
export function userError(message: string, target?: string): Response {
  return { status: 400, body: { error: { code: "UserError", message, ...(target ? { target } : {}) } } };
}

export class BadField extends Error {
  constructor(
    readonly target: string,
    message: string,
  ) {
    super(message);
  }
}

/** The workspace a route's path names. */
export function workspaceOf(ctx: EmulatorContext, p: Record<string, string>): Workspace {
  return findWorkspace(ctx.estate, p.subscriptionId ?? "", p.resourceGroupName ?? "", p.workspaceName ?? "");
}

/** A route of this provider. */
export function mlRoute(r: Omit<ArmRoute, "provider">): ArmRoute {
  return { ...r, provider: ML_PROVIDER };
}

/** A client-sent value for an error message. */
export function shown(v: unknown): string {
  return typeof v === "string" ? v : (JSON.stringify(v) ?? "undefined");
}

// ---------------------------------------------------------------------------------------------
// Paging: opaque `$skip` tokens that survive concurrent creates and deletes (keyset, not offset)

export function encodeSkipToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

export function decodeSkipToken(token: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

export function invalidSkip(): AzureError {
  return new AzureError(400, "UserError", "The continuation token passed in '$skip' is not valid.");
}

export function nextLinkFor(req: Request, extra: Record<string, string | undefined>): string {
  const url = new URL(req.url.pathname, baseUrl(req));
  url.searchParams.set("api-version", req.query.get("api-version") ?? ML_API_VERSION);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}
