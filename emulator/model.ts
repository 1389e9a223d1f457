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
  /** false: the data plane refuses both keys (Entra ID only); ARM still lists and regenerates them. */
  allowSharedKeyAccess: boolean;
  keys: Record<KeyName, StorageKey>;
}

export type DatastoreType = "AzureBlob" | "AzureFile" | "AzureDataLakeGen2";

export type DatastoreCredentials =
  | { credentialsType: "AccountKey"; secrets: { secretsType: "AccountKey"; key: string } }
  | { credentialsType: "Sas"; secrets: { secretsType: "Sas"; sasToken: string } }
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
  /** Datastores by lower-cased name, in creation order. */
  datastores: Map<string, Datastore>;
}

export interface BatchAccount {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  keys: { primary: string; secondary: string };
  autoStorage?: {
    storageAccountId: string;
    authenticationMode: "StorageKeys" | "BatchAccountManagedIdentity";
    lastKeySync: Date;
    /** The storage key Batch holds for auto-storage; set by syncAutoStorageKeys. */
    heldKey: string;
  };
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

/** A Key Vault reader: an app that reads the latest version of a secret holding a storage key. */
export interface KeyVaultReader {
  name: string;
  vaultName: string;
  secretName: string;
  storageAccountId: string;
}

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

export function workspaceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${name}`;
}

export function batchAccountId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Batch/batchAccounts/${name}`;
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
