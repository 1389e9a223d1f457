/** Workspaces: list (by subscription, by resource group, `$skip` paging), get and listKeys. */
import { createHash, randomUUID } from "node:crypto";
import type { ArmRoute, EmulatorContext } from "../../context";
import { isObject, type Request, type Response } from "../../http";
import { resourceKey, type Workspace } from "../../model";
import { workspaceRegistryCredentials } from "../registry";
import {
  ML_ACTIONS,
  ML_PROVIDER,
  WORKSPACE_PAGE_SIZE,
  WORKSPACE_TYPE,
  WS,
  decodeSkipToken,
  encodeSkipToken,
  invalidSkip,
  mlRoute,
  nextLinkFor,
  workspaceOf,
} from "./common";

function stableGuid(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface WorkspaceExtras {
  createdAt: Date;
  principalId: string;
  appInsightsKey: string;
}

function workspaceResource(
  ws: Workspace,
  tenantId: string,
  extras: WorkspaceExtras,
  /** Whether its registry exists in the estate. */
  hasRegistry: boolean,
): Record<string, unknown> {
  const created = extras.createdAt.toISOString();
  return {
    id: ws.id,
    name: ws.name,
    type: WORKSPACE_TYPE,
    location: ws.location,
    tags: {},
    kind: "Default",
    sku: { name: "Basic", tier: "Basic" },
    identity: { type: "SystemAssigned", principalId: extras.principalId, tenantId },
    systemData: {
      createdAt: created,
      createdBy: "keyturn-emulator",
      createdByType: "Application",
      lastModifiedAt: created,
      lastModifiedBy: "keyturn-emulator",
      lastModifiedByType: "Application",
    },
    properties: {
      friendlyName: ws.name,
      description: "",
      storageAccount: ws.storageAccountId,
      keyVault: ws.keyVaultId,
      applicationInsights: ws.applicationInsightsId,
      // Azure creates a workspace's registry on first use: until then the workspace names none.
      containerRegistry: hasRegistry ? ws.containerRegistryId : null,
      hbiWorkspace: false,
      provisioningState: "Succeeded",
      workspaceId: stableGuid(resourceKey(ws.id)),
      discoveryUrl: `https://${ws.location}.api.azureml.ms/discovery`,
      mlFlowTrackingUri: `azureml://${ws.location}.api.azureml.ms/mlflow/v1.0${ws.id}`,
      tenantId,
      storageHnsEnabled: false,
      privateLinkCount: 0,
      publicNetworkAccess: "Enabled",
      allowPublicAccessWhenBehindVnet: false,
      v1LegacyMode: false,
      privateEndpointConnections: [],
      sharedPrivateLinkResources: [],
      notebookInfo: null,
    },
  };
}

function listWorkspaceKeysResult(ws: Workspace, extras: WorkspaceExtras): Record<string, unknown> {
  return {
    userStorageKey: ws.userStorageKey,
    userStorageResourceId: ws.storageAccountId,
    appInsightsInstrumentationKey: extras.appInsightsKey,
    // The one registry admin password the workspace holds (emulator/arm/registry.ts), or null.
    containerRegistryCredentials: workspaceRegistryCredentials(ws),
    notebookAccessKeys: { primaryAccessKey: null, secondaryAccessKey: null },
  };
}

function pageOfWorkspaces(req: Request, all: Workspace[]): Workspace[] {
  const sorted = all.sort((a, b) => (resourceKey(a.id) < resourceKey(b.id) ? -1 : 1));
  const skip = req.query.get("$skip");
  if (skip === undefined) return sorted;
  const after = decodeSkipToken(skip);
  if (!isObject(after) || typeof after.after !== "string") throw invalidSkip();
  const from = after.after;
  return sorted.filter((ws) => resourceKey(ws.id) > from);
}

function workspaceList(req: Request, all: Workspace[], render: (ws: Workspace) => unknown): Response {
  const rest = pageOfWorkspaces(req, all);
  const page = rest.slice(0, WORKSPACE_PAGE_SIZE);
  const last = page.at(-1);
  const body: Record<string, unknown> = { value: page.map(render) };
  if (rest.length > page.length && last) {
    body.nextLink = nextLinkFor(req, { $skip: encodeSkipToken({ after: resourceKey(last.id) }) });
  }
  return { status: 200, body };
}

export function workspaceRoutes(ctx: EmulatorContext): ArmRoute[] {
  const startedAt = ctx.now();
  const extrasByWorkspace = new WeakMap<Workspace, WorkspaceExtras>();

  const extrasOf = (ws: Workspace): WorkspaceExtras => {
    let extras = extrasByWorkspace.get(ws);
    if (!extras) {
      extras = {
        createdAt: startedAt,
        principalId: randomUUID(),
        appInsightsKey: randomUUID(),
      };
      extrasByWorkspace.set(ws, extras);
    }
    return extras;
  };
  const renderWorkspace = (ws: Workspace): unknown =>
    workspaceResource(
      ws,
      ctx.estate.tenantId,
      extrasOf(ws),
      ctx.estate.registries.has(resourceKey(ws.containerRegistryId)),
    );
  const inScope = (sub: string, rg?: string): Workspace[] =>
    [...ctx.estate.workspaces.values()].filter(
      (ws) =>
        ws.subscriptionId.toLowerCase() === sub.toLowerCase() &&
        (rg === undefined || ws.resourceGroup.toLowerCase() === rg.toLowerCase()),
    );

  return [
    mlRoute({
      method: "GET",
      pattern: `/subscriptions/{subscriptionId}/providers/${ML_PROVIDER}/workspaces`,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.listBySubscription",
      handler: (req, p) => workspaceList(req, inScope(p.subscriptionId ?? ""), renderWorkspace),
    }),
    mlRoute({
      method: "GET",
      pattern: WS,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.listByResourceGroup",
      handler: (req, p) =>
        workspaceList(req, inScope(p.subscriptionId ?? "", p.resourceGroupName ?? ""), renderWorkspace),
    }),
    mlRoute({
      method: "GET",
      pattern: `${WS}/{workspaceName}`,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.get",
      handler: (_req, p) => ({ status: 200, body: renderWorkspace(workspaceOf(ctx, p)) }),
    }),
    mlRoute({
      method: "POST",
      pattern: `${WS}/{workspaceName}/listKeys`,
      action: ML_ACTIONS.workspaceListKeys,
      kind: "write",
      operation: "workspaces.listKeys",
      handler: (_req, p) => {
        const ws = workspaceOf(ctx, p);
        return { status: 200, body: listWorkspaceKeysResult(ws, extrasOf(ws)) };
      },
    }),
  ];
}
