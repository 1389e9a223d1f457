import { AzureCallError, KeyturnError, redact } from "../errors";

/**
 * Every Azure call keyturn makes, with the permission it needs. Naming the action here lets a 403 say
 * exactly what to grant, and keeps the list next to infra/keyturn-role.json honest (invariant I7).
 */
export interface Operation {
  /** keyturn's name for the call, e.g. `storageAccounts.listKeys`. */
  name: string;
  /** The ARM action or Key Vault data action the call needs. */
  action: string;
  /** `serviceManagement`: the classic API behind classic storage accounts' keys (RBAC-checked like ARM). */
  service: "arm" | "serviceManagement" | "keyVault" | "containerRegistry";
  /** What the call is about, for "… was not found". */
  resource: string;
  /** The role file that grants `action`, when not keyturn's main one (ROLE_FILE): a 403 names it. */
  roleFile?: string;
}

const arm = (name: string, action: string, resource: string): Operation => ({
  name,
  action,
  service: "arm",
  resource,
});

/** The role file that grants the container registry actions (assigned only when the feature is on). */
export const REGISTRY_ROLE_FILE = "infra/keyturn-registry-role.json";

const registryOp = (name: string, action: string): Operation => ({
  ...arm(name, action, "container registry"),
  roleFile: REGISTRY_ROLE_FILE,
});

export const OPERATIONS = {
  listStorageAccounts: arm("storageAccounts.list", "Microsoft.Storage/storageAccounts/read", "subscription"),
  getStorageAccount: arm(
    "storageAccounts.getProperties",
    "Microsoft.Storage/storageAccounts/read",
    "storage account",
  ),
  listStorageKeys: arm(
    "storageAccounts.listKeys",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "storage account",
  ),
  regenerateStorageKey: arm(
    "storageAccounts.regenerateKey",
    "Microsoft.Storage/storageAccounts/regeneratekey/action",
    "storage account",
  ),
  listClassicStorageAccounts: arm(
    "classicStorageAccounts.list",
    "Microsoft.ClassicStorage/storageAccounts/read",
    "subscription",
  ),
  getClassicStorageAccount: arm(
    "classicStorageAccounts.get",
    "Microsoft.ClassicStorage/storageAccounts/read",
    "classic storage account",
  ),
  listClassicStorageKeys: {
    name: "storageServices.getKeys",
    action: "Microsoft.ClassicStorage/storageAccounts/listKeys/action",
    service: "serviceManagement",
    resource: "classic storage account",
  },
  regenerateClassicStorageKey: {
    name: "storageServices.regenerateKeys",
    action: "Microsoft.ClassicStorage/storageAccounts/regenerateKey/action",
    service: "serviceManagement",
    resource: "classic storage account",
  },
  listWorkspaces: arm(
    "workspaces.listBySubscription",
    "Microsoft.MachineLearningServices/workspaces/read",
    "subscription",
  ),
  getWorkspace: arm("workspaces.get", "Microsoft.MachineLearningServices/workspaces/read", "workspace"),
  listWorkspaceKeys: arm(
    "workspaces.listKeys",
    "Microsoft.MachineLearningServices/workspaces/listKeys/action",
    "workspace",
  ),
  resyncWorkspaceKeys: arm(
    "workspaces.resyncKeys",
    "Microsoft.MachineLearningServices/workspaces/resynckeys/action",
    "workspace",
  ),
  listDatastores: arm(
    "datastores.list",
    "Microsoft.MachineLearningServices/workspaces/datastores/read",
    "workspace",
  ),
  getDatastore: arm(
    "datastores.get",
    "Microsoft.MachineLearningServices/workspaces/datastores/read",
    "datastore",
  ),
  putDatastore: arm(
    "datastores.createOrUpdate",
    "Microsoft.MachineLearningServices/workspaces/datastores/write",
    "datastore",
  ),
  listDatastoreSecrets: arm(
    "datastores.listSecrets",
    "Microsoft.MachineLearningServices/workspaces/datastores/listsecrets/action",
    "datastore",
  ),
  listBatchAccounts: arm("batchAccounts.list", "Microsoft.Batch/batchAccounts/read", "subscription"),
  getBatchAccount: arm("batchAccounts.get", "Microsoft.Batch/batchAccounts/read", "Batch account"),
  syncAutoStorageKeys: arm(
    "batchAccounts.synchronizeAutoStorageKeys",
    "Microsoft.Batch/batchAccounts/syncAutoStorageKeys/action",
    "Batch account",
  ),
  // Batch account shared keys (opt-in, KEYTURN_BATCH_KEYS): granted by the second role file only.
  getBatchKeys: {
    ...arm("batchAccounts.getKeys", "Microsoft.Batch/batchAccounts/listkeys/action", "Batch account"),
    roleFile: "infra/keyturn-batch-role.json",
  },
  regenerateBatchKey: {
    ...arm(
      "batchAccounts.regenerateKey",
      "Microsoft.Batch/batchAccounts/regeneratekeys/action",
      "Batch account",
    ),
    roleFile: "infra/keyturn-batch-role.json",
  },
  // Container registry admin passwords (opt-in, --registry-passwords): granted by their own role file.
  getRegistry: registryOp("registries.get", "Microsoft.ContainerRegistry/registries/read"),
  listRegistries: {
    ...arm("registries.list", "Microsoft.ContainerRegistry/registries/read", "subscription"),
    roleFile: "infra/keyturn-registry-role.json",
  },
  listRegistryCredentials: registryOp(
    "registries.listCredentials",
    "Microsoft.ContainerRegistry/registries/listCredentials/action",
  ),
  regenerateRegistryCredential: registryOp(
    "registries.regenerateCredential",
    "Microsoft.ContainerRegistry/registries/regenerateCredential/action",
  ),
  probeRegistry: {
    name: "registry.v2",
    action: "(none: the registry's admin user signs in with basic auth)",
    service: "containerRegistry",
    resource: "container registry",
  },
  listSubscriptions: arm("subscriptions.list", "(any role assignment in the subscription)", "tenant"),
  getSecret: {
    name: "secrets.getSecret",
    action: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    service: "keyVault",
    resource: "Key Vault secret",
  },
  listSecrets: {
    name: "secrets.listPropertiesOfSecrets",
    action: "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    service: "keyVault",
    resource: "Key Vault",
  },
  setSecret: {
    name: "secrets.setSecret",
    action: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    service: "keyVault",
    resource: "Key Vault secret",
  },
} as const satisfies Record<string, Operation>;

export const ROLE_FILE = "infra/keyturn-role.json";

/**
 * Runs one SDK call and turns any failure into an AzureCallError (see shared/errors.ts). `secrets` are
 * the values the call sends, removed from any text that is kept.
 */
export async function azureCall<T>(
  operation: Operation,
  resourceId: string,
  fn: () => Promise<T>,
  secrets: readonly string[] = [],
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toAzureCallError(e, operation, resourceId, secrets);
  }
}

interface SdkError {
  name?: unknown;
  message?: unknown;
  statusCode?: unknown;
  code?: unknown;
  request?: { url?: unknown };
}

const CREDENTIAL_ERRORS = new Set([
  "AuthenticationError",
  "AggregateAuthenticationError",
  "CredentialUnavailableError",
  "AuthenticationRequiredError",
]);

/** How much of Azure's own message is kept: enough for a validation reason, never a body dump. */
const MAX_AZURE_MESSAGE = 300;

export function toAzureCallError(
  e: unknown,
  operation: Operation,
  resourceId: string,
  secrets: readonly string[] = [],
): Error {
  if (e instanceof KeyturnError) return e;
  // Duck-typed: the SDKs may each carry their own copy of core-rest-pipeline's RestError.
  const err = (typeof e === "object" && e !== null ? e : {}) as SdkError;
  const name = typeof err.name === "string" ? err.name : "";
  const statusCode = typeof err.statusCode === "number" ? err.statusCode : undefined;
  const code = typeof err.code === "string" && err.code !== "" ? err.code : undefined;
  const fullMessage = redact(typeof err.message === "string" ? err.message : String(e), secrets);
  const azureMessage = shorten(fullMessage);
  const on = `${operation.name} on ${resourceId}`;
  const status = `${statusCode ?? ""}${code ? ` ${code}` : ""}`.trim();

  let message: string;
  let retryable = false;
  if (CREDENTIAL_ERRORS.has(name)) {
    message = `${on} failed: no token for the identity (${name}): check its tenant, client id and secret, or the managed identity; ${azureMessage}`;
  } else if (statusCode === undefined) {
    retryable = true;
    message = `${on} failed: no answer from ${hostOf(err.request?.url) ?? "Azure"} (${code ?? (name || "network error")}): check network access to the endpoint and retry`;
  } else if (statusCode === 401 || (statusCode === 403 && code === "AuthenticationFailed")) {
    // Service Management answers a token it does not accept with 403 AuthenticationFailed, not 401.
    message = `${on} failed (${status}): the credential was refused: check the identity's tenant, client id and secret, or the managed identity`;
  } else if (statusCode === 403) {
    message = forbidden(on, status, operation, resourceId, fullMessage);
  } else if (statusCode === 404) {
    const what =
      code === "ResourceGroupNotFound"
        ? "resource group of"
        : code === "SubscriptionNotFound"
          ? "subscription of"
          : "";
    message = `${on} failed (${status}): the ${what ? `${what} ${operation.resource}` : operation.resource} ${resourceId} was not found: it may have been deleted or moved; run discovery again`;
  } else if (statusCode === 429) {
    retryable = true;
    message = `${on} failed (${status}): Azure throttled the call even after the SDK's retries: lower keyturn's parallelism or retry later`;
  } else if (statusCode === 408 || statusCode >= 500) {
    retryable = true;
    message = `${on} failed (${status}): the service failed; retry later. Azure said: ${azureMessage}`;
  } else if (statusCode === 409) {
    message = `${on} failed (${status}): the resource is locked or busy (a ReadOnly/CanNotDelete lock, or another operation): Azure said: ${azureMessage}`;
  } else {
    message = `${on} failed (${status}): Azure rejected the request: ${azureMessage}`;
  }
  return new AzureCallError({ operation: operation.name, resourceId, statusCode, code, retryable, message });
}

function forbidden(
  on: string,
  status: string,
  operation: Operation,
  resourceId: string,
  azureMessage: string,
): string {
  // Not every 403 is a missing permission: a disabled Key Vault secret, a firewall, shared keys turned off.
  // Paged calls lose Azure's message ("Pagination failed with unexpected statusCode 403"), so a 403 counts
  // as a missing permission unless it says otherwise.
  if (
    /disabled|firewall|client address|ip address|network acl|not permitted/i.test(`${status} ${azureMessage}`)
  ) {
    return `${on} failed (${status}): Azure refused the call: ${shorten(azureMessage)}`;
  }
  if (operation.service === "keyVault") {
    return (
      `${on} failed (${status}): the identity lacks ${operation.action} on ${resourceId}: ` +
      `assign a role with that data action on the vault (keyturn's are in ${ROLE_FILE}), or grant the matching secret permission in the vault's access policy`
    );
  }
  // ARM names the action and scope it checked; a linked check (LinkedAuthorizationFailed) differs from ours.
  const named = /action '([^']+)' over scope '([^']+)'/i.exec(azureMessage);
  const action = named?.[1] ?? operation.action;
  const scope = named?.[2] ?? resourceId;
  return `${on} failed (${status}): the identity lacks ${action} on ${scope}: assign the keyturn role (${operation.roleFile ?? ROLE_FILE})`;
}

function shorten(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > MAX_AZURE_MESSAGE ? `${oneLine.slice(0, MAX_AZURE_MESSAGE)}…` : oneLine;
}

function hostOf(url: unknown): string | undefined {
  if (typeof url !== "string") return undefined;
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

/** SDK dates are Date objects; tolerate a string in case a deserializer passes one through. */
export function isoTime(value: Date | string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * A subscription where a resource provider was never registered has none of its resources, and ARM
 * says so with `MissingSubscriptionRegistration`: for a list, that is an empty list, not a failure.
 */
export async function listOrNoneIfUnregistered<T>(list: () => Promise<T[]>): Promise<T[]> {
  try {
    return await list();
  } catch (e) {
    if ((e as { code?: string }).code === "MissingSubscriptionRegistration") return [];
    throw e;
  }
}
