import { randomBytes, randomUUID } from "node:crypto";
import type { ResyncPolicy } from "./settings";

/**
 * The emulator's estate: the Azure resources keyturn touches, held in memory.
 * Key values are made at start (never stored in code or fixtures) and live only here
 * and in Azurite, as they live only in Azure's stores in production.
 */

export type KeyName = "key1" | "key2";

export interface StorageKey {
  value: string;
  creationTime: Date;
  /**
   * From when the data plane (and datastore validation) accepts the key: set on a regeneration
   * under `keyPropagationSeconds`. Undefined: accepted since it was made.
   */
  propagatedAt?: Date;
}

export interface StorageAccount {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  kind: "StorageV2";
  tags: Record<string, string>;
  isHnsEnabled: boolean;
  keyExpirationPeriodInDays?: number;
  /** `sasPolicy.sasExpirationPeriod` ("d.hh:mm:ss"): the longest a SAS should be valid (expirationAction Log). */
  sasExpirationPeriod?: string;
  /** false: the data plane refuses both keys (Entra ID only); ARM still lists and regenerates them. */
  allowSharedKeyAccess: boolean;
  /**
   * A classic account (`Microsoft.ClassicStorage/storageAccounts`, its id says so): ARM lists it under that
   * namespace only, Service Management serves its keys (Primary = key1, Secondary = key2), and the data
   * plane, datastores and consumers treat it like any other account.
   */
  classic?: true;
  keys: Record<KeyName, StorageKey>;
}

export type DatastoreType = "AzureBlob" | "AzureFile" | "AzureDataLakeGen2";

/**
 * The SAS the emulator signs for a SAS datastore when its data plane starts (emulator/sas.ts):
 * - `account`, `container`: signed with key1; re-signable.
 * - `userDelegation`: shaped like a user delegation SAS (`skoid`…): no account key signed it.
 * - `expired`: an account SAS signed with key1 whose expiry has passed.
 */
export type SasRecipe = "account" | "container" | "userDelegation" | "expired";

export type DatastoreCredentials =
  | { credentialsType: "AccountKey"; secrets: { secretsType: "AccountKey"; key: string } }
  | {
      credentialsType: "Sas";
      secrets: { secretsType: "Sas"; sasToken: string };
      /** With an empty token: the SAS the emulator signs when its data plane starts (emulator/sas.ts). */
      recipe?: SasRecipe;
    }
  | { credentialsType: "None" };

export interface Datastore {
  id: string;
  name: string;
  datastoreType: DatastoreType;
  accountName: string;
  /** container (blob), file share (file) or filesystem (ADLS Gen2) */
  containerName: string;
  endpoint: string;
  protocol: string;
  isDefault: boolean;
  description?: string;
  tags: Record<string, string>;
  credentials: DatastoreCredentials;
  createdAt: Date;
  lastModifiedAt: Date;
}

export interface Workspace {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  storageAccountId: string;
  keyVaultId: string;
  applicationInsightsId: string;
  containerRegistryId: string;
  /** The storage key the workspace itself holds (listKeys().userStorageKey); set by a resync. */
  userStorageKey: string;
  /**
   * The container registry admin password the workspace holds (listKeys().containerRegistryCredentials),
   * by the name it had when the workspace took it; set by a resync (`registryResyncPick`). Undefined:
   * none (its registry is not in the estate).
   */
  registryPassword?: { name: RegistryPasswordName; value: string };
  /** Datastores by lower-cased name, in creation order. */
  datastores: Map<string, Datastore>;
}

export interface BatchAccount {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  /** The account's shared keys (Batch names them Primary and Secondary; keyturn key1 and key2). */
  keys: { primary: string; secondary: string };
  /**
   * How the Batch data plane may be signed in to. Without `SharedKey`, ARM refuses to list or
   * regenerate the keys and the data plane refuses every SharedKey request ("Entra ID only").
   */
  allowedAuthenticationModes: BatchAuthenticationMode[];
  /**
   * The account's data plane, as ARM reports it (`host:port`, no scheme, like Azure's
   * `{name}.{region}.batch.azure.com`): set when the emulator's Batch data plane for it starts.
   */
  accountEndpoint?: string;
  autoStorage?: {
    storageAccountId: string;
    authenticationMode: "StorageKeys" | "BatchAccountManagedIdentity";
    lastKeySync: Date;
    /** The storage key Batch holds for auto-storage; set by syncAutoStorageKeys. */
    heldKey: string;
  };
}

export type BatchAuthenticationMode = "SharedKey" | "AAD" | "TaskAuthenticationToken";

export type RegistryPasswordName = "password" | "password2";

/** A container registry (Microsoft.ContainerRegistry/registries) and its admin user's two passwords. */
export interface ContainerRegistry {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  /** false: ARM refuses the credential operations and the registry refuses the admin user. */
  adminUserEnabled: boolean;
  passwords: Record<RegistryPasswordName, string>;
  createdAt: Date;
  /** Set when the registry's HTTPS listener starts: `127.0.0.1:{port}` (Azure's `{name}.azurecr.io`). */
  loginServer: string;
}

export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  tags: Record<string, string>;
  enabled: boolean;
  created: Date;
  updated: Date;
}

export interface KeyVault {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  /** Set when the vault's HTTPS listener starts, e.g. https://localhost:4711/ */
  vaultUri: string;
  secrets: Map<string, SecretVersion[]>;
}

/**
 * A Key Vault reader: an app that reads the latest enabled version of a secret holding a storage key
 * (`storageAccountId`) or a Batch account's shared key (`batchAccountId`): exactly one of the two.
 */
export type KeyVaultReader = {
  name: string;
  vaultName: string;
  secretName: string;
} & (
  | { storageAccountId: string; batchAccountId?: undefined }
  | { batchAccountId: string; storageAccountId?: undefined }
);

export interface Subscription {
  subscriptionId: string;
  displayName: string;
  resourceGroups: Set<string>;
}

export interface Estate {
  tenantId: string;
  subscriptions: Map<string, Subscription>;
  /** All resources are keyed by their lower-cased ARM id. */
  storageAccounts: Map<string, StorageAccount>;
  workspaces: Map<string, Workspace>;
  batchAccounts: Map<string, BatchAccount>;
  registries: Map<string, ContainerRegistry>;
  vaults: Map<string, KeyVault>;
  keyVaultReaders: KeyVaultReader[];
}

export function newStorageKey(): string {
  return randomBytes(64).toString("base64");
}

export function newVersion(): string {
  return randomUUID().replace(/-/g, "");
}

export const resourceKey = (id: string): string => id.toLowerCase();

export function storageAccountId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Storage/storageAccounts/${name}`;
}

export function classicStorageAccountId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.ClassicStorage/storageAccounts/${name}`;
}

export function workspaceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${name}`;
}

export function batchAccountId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Batch/batchAccounts/${name}`;
}

export function registryId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.ContainerRegistry/registries/${name}`;
}

/**
 * A new registry admin password in Azure's form: 52 base64 characters with `+ACR` inside (as
 * `XCzd…Km+ACRBYty1E`), so the whole-run secret scan finds one as it finds a storage key.
 */
export function newRegistryPassword(): string {
  return `${randomBytes(30).toString("base64")}+ACR${randomBytes(6).toString("base64")}`;
}

export function keyVaultId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`;
}

/** Name of the storage key a value currently is, or undefined if it is not a live key of the account. */
export function liveKeyName(account: StorageAccount, value: string): KeyName | undefined {
  if (account.keys.key1.value === value) return "key1";
  if (account.keys.key2.value === value) return "key2";
  return undefined;
}

/**
 * Whether a key value works on the account's data plane at a moment: it is one of the account's two
 * keys, it has propagated, and the account allows shared-key access.
 */
export function keyWorks(account: StorageAccount, value: string, at: Date): boolean {
  const name = liveKeyName(account, value);
  if (!name || !account.allowSharedKeyAccess) return false;
  const from = account.keys[name].propagatedAt;
  return from === undefined || from.getTime() <= at.getTime();
}

/**
 * The key a service-chosen consumer (a workspace resync, a Batch auto-storage sync) takes under a
 * policy: key1; the key most of the voters hold (a tie or none: key1); or the key it holds while that
 * key works, else key1.
 */
export function serviceChosenKeyName(
  account: StorageAccount,
  policy: ResyncPolicy,
  held: string,
  votes: () => Iterable<string>,
  at: Date,
): KeyName {
  if (policy === "key1") return "key1";
  if (policy === "keepIfLive") return keyWorks(account, held, at) ? liveKeyName(account, held)! : "key1";
  const count: Record<KeyName, number> = { key1: 0, key2: 0 };
  for (const value of votes()) {
    const name = liveKeyName(account, value);
    if (name) count[name]++;
  }
  return count.key2 > count.key1 ? "key2" : "key1";
}

export function findStorageAccountByName(estate: Estate, name: string): StorageAccount | undefined {
  const lower = name.toLowerCase();
  for (const account of estate.storageAccounts.values()) {
    if (account.name.toLowerCase() === lower) return account;
  }
  return undefined;
}
