import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { ArmCall, ArmRoute, EmulatorContext, ResyncPolicy, RouteModule } from "../context";
import { AzureError, isObject, jsonBody, type Request, type Response } from "../http";
import {
  findStorageAccountByName,
  keyWorks,
  resourceKey,
  serviceChosenKeyName,
  workspaceId,
  type Datastore,
  type DatastoreCredentials,
  type DatastoreType,
  type Estate,
  type StorageAccount,
  type Workspace,
} from "../model";
import { baseUrl, resourceNotFound } from "./common";

/**
 * Microsoft.MachineLearningServices as `@azure/arm-machinelearning@2.1.1` (api-version 2022-10-01)
 * sees it: workspaces (list, get, listKeys, resyncKeys as a Location-polled long-running operation)
 * and datastores (list with `$skip` paging, get without secrets, createOrUpdate with key
 * validation, listSecrets, delete). The server has already authenticated, throttled and checked
 * RBAC, the api-version and the subscription/resource group before a handler runs.
 */

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

const WS =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces";
const DS = `${WS}/{workspaceName}/datastores`;
const OPERATION_STATUS =
  "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/workspaceOperationsStatus/{operationId}";
const DATASTORE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$/;
const MAX_OPERATIONS = 10_000;

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

class BadField extends Error {
  constructor(
    readonly target: string,
    message: string,
  ) {
    super(message);
  }
}

function stableGuid(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A client-sent value for an error message. */
function shown(v: unknown): string {
  return typeof v === "string" ? v : (JSON.stringify(v) ?? "undefined");
}

function lastSegment(id: string): string {
  return id.slice(id.lastIndexOf("/") + 1);
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

function invalidSkip(): AzureError {
  return new AzureError(400, "UserError", "The continuation token passed in '$skip' is not valid.");
}

function nextLinkFor(req: Request, extra: Record<string, string | undefined>): string {
  const url = new URL(req.url.pathname, baseUrl(req));
  url.searchParams.set("api-version", req.query.get("api-version") ?? ML_API_VERSION);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

// ---------------------------------------------------------------------------------------------
// Workspaces

interface WorkspaceExtras {
  createdAt: Date;
  principalId: string;
  acrPasswords: [string, string];
  appInsightsKey: string;
}

function workspaceResource(
  ws: Workspace,
  tenantId: string,
  extras: WorkspaceExtras,
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
      containerRegistry: ws.containerRegistryId,
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
    containerRegistryCredentials: {
      location: ws.location,
      username: lastSegment(ws.containerRegistryId),
      passwords: [
        { name: "password", value: extras.acrPasswords[0] },
        { name: "password2", value: extras.acrPasswords[1] },
      ],
    },
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

// ---------------------------------------------------------------------------------------------
// Datastores

interface Authorship {
  createdBy: string;
  createdByType: string;
  lastModifiedBy: string;
  lastModifiedByType: string;
}

const SEEDED: Authorship = {
  createdBy: "keyturn-emulator",
  createdByType: "Application",
  lastModifiedBy: "keyturn-emulator",
  lastModifiedByType: "Application",
};

function containerField(type: DatastoreType): string {
  return type === "AzureFile"
    ? "fileShareName"
    : type === "AzureDataLakeGen2"
      ? "filesystem"
      : "containerName";
}

/** Credentials as GET shows them: the type only, never secrets. */
export function publicCredentials(credentials: DatastoreCredentials): Record<string, unknown> {
  return { credentialsType: credentials.credentialsType };
}

/** A datastore as AML answers GET/list/PUT: no secrets. */
export function datastoreResource(ds: Datastore, authorship: Authorship = SEEDED): Record<string, unknown> {
  return {
    id: ds.id,
    name: ds.name,
    type: DATASTORE_TYPE,
    properties: {
      description: ds.description ?? null,
      tags: ds.tags,
      properties: {},
      credentials: publicCredentials(ds.credentials),
      datastoreType: ds.datastoreType,
      isDefault: ds.isDefault,
      accountName: ds.accountName,
      [containerField(ds.datastoreType)]: ds.containerName,
      endpoint: ds.endpoint,
      protocol: ds.protocol,
      serviceDataAccessAuthIdentity: "None",
    },
    systemData: {
      createdAt: ds.createdAt.toISOString(),
      createdBy: authorship.createdBy,
      createdByType: authorship.createdByType,
      lastModifiedAt: ds.lastModifiedAt.toISOString(),
      lastModifiedBy: authorship.lastModifiedBy,
      lastModifiedByType: authorship.lastModifiedByType,
    },
  };
}

function requireString(obj: Record<string, unknown>, field: string, target: string): string {
  const v = obj[field];
  if (typeof v !== "string" || v.trim() === "") {
    throw new BadField(target, `The field '${target}' is required and must be a non-empty string.`);
  }
  return v;
}

function parseCredentials(props: Record<string, unknown>): DatastoreCredentials {
  const creds = props.credentials;
  if (!isObject(creds))
    throw new BadField("properties.credentials", "The field 'properties.credentials' is required.");
  const type = creds.credentialsType;
  const secrets = isObject(creds.secrets) ? creds.secrets : undefined;
  switch (type) {
    case "None":
      return { credentialsType: "None" };
    case "AccountKey": {
      if (!secrets || secrets.secretsType !== "AccountKey") {
        throw new BadField(
          "properties.credentials.secrets",
          "AccountKey credentials need 'properties.credentials.secrets' with secretsType 'AccountKey'.",
        );
      }
      const key = requireString(secrets, "key", "properties.credentials.secrets.key");
      return { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key } };
    }
    case "Sas": {
      if (!secrets || secrets.secretsType !== "Sas") {
        throw new BadField(
          "properties.credentials.secrets",
          "Sas credentials need 'properties.credentials.secrets' with secretsType 'Sas'.",
        );
      }
      const sasToken = requireString(secrets, "sasToken", "properties.credentials.secrets.sasToken");
      return { credentialsType: "Sas", secrets: { secretsType: "Sas", sasToken } };
    }
    case undefined:
      throw new BadField(
        "properties.credentials.credentialsType",
        "The field 'properties.credentials.credentialsType' is required.",
      );
    default:
      throw new BadField(
        "properties.credentials.credentialsType",
        `The value '${shown(type)}' of 'properties.credentials.credentialsType' is not supported: use AccountKey, Sas or None.`,
      );
  }
}

type DatastoreInput = Pick<
  Datastore,
  | "datastoreType"
  | "accountName"
  | "containerName"
  | "endpoint"
  | "protocol"
  | "description"
  | "tags"
  | "credentials"
>;

function parseTags(props: Record<string, unknown>): Record<string, string> {
  const tags = props.tags ?? {};
  if (!isObject(tags) || Object.values(tags).some((v) => typeof v !== "string")) {
    throw new BadField("properties.tags", "The field 'properties.tags' must map names to string values.");
  }
  return tags as Record<string, string>;
}

/** Validates a datastore PUT body like AML; throws BadField naming the field at fault. */
export function parseDatastoreBody(body: unknown): DatastoreInput {
  if (!isObject(body) || !isObject(body.properties)) {
    throw new BadField("properties", "The field 'properties' is required.");
  }
  const props = body.properties;
  const type = props.datastoreType;
  if (type === undefined)
    throw new BadField("properties.datastoreType", "The field 'properties.datastoreType' is required.");
  if (type !== "AzureBlob" && type !== "AzureFile" && type !== "AzureDataLakeGen2") {
    throw new BadField(
      "properties.datastoreType",
      `The value '${shown(type)}' of 'properties.datastoreType' is not supported: use AzureBlob, AzureFile or AzureDataLakeGen2.`,
    );
  }
  const accountName = requireString(props, "accountName", "properties.accountName");
  const field = containerField(type);
  const containerName = requireString(props, field, `properties.${field}`);
  const optional = (name: string, fallback: string): string => {
    const v = props[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string")
      throw new BadField(`properties.${name}`, `The field 'properties.${name}' must be a string.`);
    return v;
  };
  const description = optional("description", "");
  return {
    datastoreType: type,
    accountName,
    containerName,
    endpoint: optional("endpoint", "core.windows.net"),
    protocol: optional("protocol", "https"),
    description: description === "" ? undefined : description,
    tags: parseTags(props),
    credentials: parseCredentials(props),
  };
}

/** AML's validation of a new datastore: the account must exist and an account key must work. */
function validateAgainstStorage(estate: Estate, input: DatastoreInput, at: Date): Response | undefined {
  const account = findStorageAccountByName(estate, input.accountName);
  if (!account) {
    return userError(
      `Datastore validation failed: storage account '${input.accountName}' could not be reached. Check 'properties.accountName', or pass skipValidation=true.`,
      "properties.accountName",
    );
  }
  if (input.credentials.credentialsType === "AccountKey" && !account.allowSharedKeyAccess) {
    return userError(
      `Datastore validation failed: storage account '${account.name}' does not permit shared key access (403 KeyBasedAuthenticationNotPermitted). Use identity-based access (credentials None), or pass skipValidation=true.`,
      "properties.credentials.credentialsType",
    );
  }
  if (
    input.credentials.credentialsType === "AccountKey" &&
    !keyWorks(account, input.credentials.secrets.key, at)
  ) {
    return userError(
      `Datastore validation failed: storage account '${account.name}' refused the account key (403 AuthenticationFailed). Check 'properties.credentials.secrets.key', or pass skipValidation=true.`,
      "properties.credentials.secrets.key",
    );
  }
  return undefined;
}

/** The orders the list accepts (`orderBy`, as the SDK documents it); creation time by default. */
export type DatastoreOrder = "createdtime" | "modifiedtime" | "name";

interface DatastoreQuery {
  count: number;
  orderBy: DatastoreOrder;
  ascending: boolean;
  isDefault?: boolean;
  names?: Set<string>;
  searchText?: string;
  after?: ListPosition;
}

function parseDatastoreQuery(req: Request): DatastoreQuery {
  const countText = req.query.get("count");
  const count = countText === undefined ? DEFAULT_DATASTORE_PAGE_SIZE : Number(countText);
  if (!Number.isInteger(count) || count < 1) {
    throw new AzureError(
      400,
      "UserError",
      `The value '${countText}' of 'count' is not valid: use a positive integer.`,
    );
  }
  const orderText = req.query.get("orderby")?.toLowerCase() ?? "createdtime";
  if (orderText !== "createdtime" && orderText !== "modifiedtime" && orderText !== "name") {
    throw new AzureError(
      400,
      "UserError",
      `The value '${orderText}' of 'orderBy' is not valid: use createdtime, modifiedtime or name.`,
    );
  }
  const isDefault = req.query.get("isdefault");
  const names = req.query.get("names");
  const skip = req.query.get("$skip");
  let after: DatastoreQuery["after"];
  if (skip !== undefined) {
    const token = decodeSkipToken(skip);
    if (!isObject(token) || typeof token.t !== "number" || typeof token.n !== "string") throw invalidSkip();
    after = { t: token.t, n: token.n };
  }
  return {
    count,
    orderBy: orderText,
    ascending: req.query.get("orderbyasc")?.toLowerCase() === "true",
    isDefault: isDefault === undefined ? undefined : isDefault.toLowerCase() === "true",
    names: names ? new Set(names.split(",").map((n) => n.trim().toLowerCase())) : undefined,
    searchText: req.query.get("searchtext")?.toLowerCase() || undefined,
    after,
  };
}

/**
 * A datastore's position in a list: the ordered-by time (0 for name order), then the lower-cased
 * name. The `$skip` token is the last position served, so a page boundary stays put while other
 * datastores are created or deleted (an offset would skip or repeat items).
 */
type ListPosition = { t: number; n: string };

function comparePositions(a: ListPosition, b: ListPosition): number {
  return a.t - b.t || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
}

function positionOf(ds: Datastore, orderBy: DatastoreOrder): ListPosition {
  const t =
    orderBy === "name" ? 0 : (orderBy === "modifiedtime" ? ds.lastModifiedAt : ds.createdAt).getTime();
  return { t, n: ds.name.toLowerCase() };
}

export function pageOfDatastores(ws: Workspace, q: DatastoreQuery): { page: Datastore[]; more: boolean } {
  const sign = q.ascending ? 1 : -1;
  const matching = [...ws.datastores.values()]
    .filter((ds) => q.isDefault === undefined || ds.isDefault === q.isDefault)
    .filter((ds) => !q.names || q.names.has(ds.name.toLowerCase()))
    .filter((ds) => !q.searchText || ds.name.toLowerCase().includes(q.searchText))
    .filter((ds) => !q.after || sign * comparePositions(positionOf(ds, q.orderBy), q.after) > 0)
    .sort((a, b) => sign * comparePositions(positionOf(a, q.orderBy), positionOf(b, q.orderBy)));
  return { page: matching.slice(0, q.count), more: matching.length > q.count };
}

// ---------------------------------------------------------------------------------------------
// Changes the service makes by itself: a resync, and its effect on the default datastores

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

/** Who created and last changed each datastore (seeded ones: the emulator). */
const authorship = new WeakMap<Datastore, Authorship>();

/**
 * Records a change to a datastore: systemData.lastModifiedAt moves on every change, even two in one
 * millisecond (keyturn compares it to find datastores changed during a grace without reading their
 * secrets), and lastModifiedBy names who made it.
 */
function recordChange(ds: Datastore, existing: boolean, at: Date, who: { by: string; type: string }): void {
  ds.lastModifiedAt = existing ? new Date(Math.max(at.getTime(), ds.lastModifiedAt.getTime() + 1)) : at;
  const prior = authorship.get(ds) ?? (existing ? SEEDED : undefined);
  authorship.set(ds, {
    createdBy: prior?.createdBy ?? who.by,
    createdByType: prior?.createdByType ?? who.type,
    lastModifiedBy: who.by,
    lastModifiedByType: who.type,
  });
}

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

// ---------------------------------------------------------------------------------------------
// Routes

export const mlRoutes: RouteModule = (ctx: EmulatorContext): ArmRoute[] => {
  const startedAt = ctx.now();
  const extrasByWorkspace = new WeakMap<Workspace, WorkspaceExtras>();
  const operations = new Map<string, ResyncOperation>();

  const extrasOf = (ws: Workspace): WorkspaceExtras => {
    let extras = extrasByWorkspace.get(ws);
    if (!extras) {
      extras = {
        createdAt: startedAt,
        principalId: randomUUID(),
        acrPasswords: [randomBytes(24).toString("base64"), randomBytes(24).toString("base64")],
        appInsightsKey: randomUUID(),
      };
      extrasByWorkspace.set(ws, extras);
    }
    return extras;
  };
  const renderWorkspace = (ws: Workspace): unknown =>
    workspaceResource(ws, ctx.estate.tenantId, extrasOf(ws));
  const renderDatastore = (ds: Datastore): Record<string, unknown> =>
    datastoreResource(ds, authorship.get(ds));
  const workspaceOf = (p: Record<string, string>): Workspace =>
    findWorkspace(ctx.estate, p.subscriptionId ?? "", p.resourceGroupName ?? "", p.workspaceName ?? "");
  const datastoreOf = (p: Record<string, string>): { ws: Workspace; ds: Datastore } => {
    const ws = workspaceOf(p);
    return { ws, ds: findDatastore(ws, p.name ?? "", p.resourceGroupName ?? "") };
  };
  const inScope = (sub: string, rg?: string): Workspace[] =>
    [...ctx.estate.workspaces.values()].filter(
      (ws) =>
        ws.subscriptionId.toLowerCase() === sub.toLowerCase() &&
        (rg === undefined || ws.resourceGroup.toLowerCase() === rg.toLowerCase()),
    );

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
    const ws = workspaceOf(p);
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

  const putDatastore = async (req: Request, p: Record<string, string>, call: ArmCall): Promise<Response> => {
    const ws = workspaceOf(p);
    const name = p.name ?? "";
    if (!DATASTORE_NAME.test(name)) {
      return userError(
        `The datastore name '${name}' is not valid: use letters, digits, '-' and '_', starting with a letter or digit.`,
        "name",
      );
    }
    let input: DatastoreInput;
    try {
      input = parseDatastoreBody(jsonBody(req));
    } catch (e) {
      if (e instanceof BadField) return userError(e.message, e.target);
      throw e;
    }
    if (req.query.get("skipvalidation")?.toLowerCase() !== "true") {
      const rejected = validateAgainstStorage(ctx.estate, input, ctx.now());
      if (rejected) return rejected;
    }
    const existing = ws.datastores.get(name.toLowerCase());
    const now = ctx.now();
    const ds: Datastore = existing
      ? Object.assign(existing, input)
      : {
          ...input,
          id: `${ws.id}/datastores/${name}`,
          name,
          isDefault: false,
          createdAt: now,
          lastModifiedAt: now,
        };
    if (!existing) ws.datastores.set(name.toLowerCase(), ds);
    recordChange(ds, existing !== undefined, now, { by: call.principal.clientId, type: "Application" });
    await ctx.changed("datastore PUT");
    return { status: existing ? 200 : 201, body: renderDatastore(ds) };
  };

  const route = (r: Omit<ArmRoute, "provider">): ArmRoute => ({ ...r, provider: ML_PROVIDER });

  return [
    route({
      method: "GET",
      pattern: `/subscriptions/{subscriptionId}/providers/${ML_PROVIDER}/workspaces`,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.listBySubscription",
      handler: (req, p) => workspaceList(req, inScope(p.subscriptionId ?? ""), renderWorkspace),
    }),
    route({
      method: "GET",
      pattern: WS,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.listByResourceGroup",
      handler: (req, p) =>
        workspaceList(req, inScope(p.subscriptionId ?? "", p.resourceGroupName ?? ""), renderWorkspace),
    }),
    route({
      method: "GET",
      pattern: `${WS}/{workspaceName}`,
      action: ML_ACTIONS.workspaceRead,
      kind: "read",
      operation: "workspaces.get",
      handler: (_req, p) => ({ status: 200, body: renderWorkspace(workspaceOf(p)) }),
    }),
    route({
      method: "POST",
      pattern: `${WS}/{workspaceName}/listKeys`,
      action: ML_ACTIONS.workspaceListKeys,
      kind: "write",
      operation: "workspaces.listKeys",
      handler: (_req, p) => {
        const ws = workspaceOf(p);
        return { status: 200, body: listWorkspaceKeysResult(ws, extrasOf(ws)) };
      },
    }),
    route({
      method: "POST",
      pattern: `${WS}/{workspaceName}/resyncKeys`,
      action: ML_ACTIONS.workspaceResyncKeys,
      kind: "write",
      operation: "workspaces.resyncKeys",
      handler: startResync,
    }),
    route({
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
    route({
      method: "GET",
      pattern: DS,
      action: ML_ACTIONS.datastoreRead,
      kind: "read",
      operation: "datastores.list",
      handler: (req, p) => {
        const ws = workspaceOf(p);
        const q = parseDatastoreQuery(req);
        const { page, more } = pageOfDatastores(ws, q);
        const last = page.at(-1);
        const body: Record<string, unknown> = { value: page.map(renderDatastore) };
        if (more && last) {
          body.nextLink = nextLinkFor(req, {
            $skip: encodeSkipToken(positionOf(last, q.orderBy)),
            count: String(q.count),
            orderBy: req.query.get("orderby"),
            orderByAsc: String(q.ascending),
            isDefault: req.query.get("isdefault"),
            names: req.query.get("names"),
            searchText: req.query.get("searchtext"),
          });
        }
        return { status: 200, body };
      },
    }),
    route({
      method: "GET",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreRead,
      kind: "read",
      operation: "datastores.get",
      handler: (_req, p) => ({ status: 200, body: renderDatastore(datastoreOf(p).ds) }),
    }),
    route({
      method: "PUT",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreWrite,
      kind: "write",
      operation: "datastores.createOrUpdate",
      handler: putDatastore,
    }),
    route({
      method: "POST",
      pattern: `${DS}/{name}/listSecrets`,
      action: ML_ACTIONS.datastoreListSecrets,
      kind: "write",
      operation: "datastores.listSecrets",
      handler: (_req, p) => {
        const { ds } = datastoreOf(p);
        if (ds.credentials.credentialsType === "None") {
          return userError(
            `Datastore '${ds.name}' uses credentials of type None, which have no secrets.`,
            "credentials",
          );
        }
        return { status: 200, body: { ...ds.credentials.secrets } };
      },
    }),
    route({
      method: "DELETE",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreDelete,
      kind: "write",
      operation: "datastores.delete",
      handler: async (_req, p) => {
        const ws = workspaceOf(p);
        if (!ws.datastores.delete((p.name ?? "").toLowerCase())) return { status: 204 };
        await ctx.changed("datastore DELETE");
        return { status: 200 };
      },
    }),
  ];
};
