import type { Fingerprint } from "./fingerprint";

/** ARM's names for the two keys. keyturn never assumes key1 is "primary": see `decideActiveKey`. */
export type KeyName = "key1" | "key2";

export const KEY_NAMES: readonly KeyName[] = ["key1", "key2"];

export function otherKey(key: KeyName): KeyName {
  return key === "key1" ? "key2" : "key1";
}

export interface KeySnapshot {
  fingerprint: Fingerprint;
  /** ISO 8601; absent for keys that predate Azure recording `keyCreationTime`. */
  creationTime?: string;
}

export interface StorageAccountSnapshot {
  /** ARM id, in whatever case ARM returned it; compare with `sameId`. */
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  tags: Record<string, string>;
  keys: Record<KeyName, KeySnapshot>;
  keyExpirationPeriodInDays?: number;
  blobEndpoint?: string;
  fileEndpoint?: string;
  /** `allowSharedKeyAccess: false`: the data plane refuses both keys, so there is nothing to rotate. */
  sharedKeyAccessDisabled?: true;
}

/**
 * - `datastore`: an ML datastore with AccountKey credentials; keyturn writes its key, so it votes.
 * - `workspace`: the workspace's own storage key; the service chooses it on `resyncKeys`, so it does
 *   not vote and follows after every regeneration.
 * - `batchAutoStorage`: a Batch account's auto-storage in StorageKeys mode; the service chooses the key
 *   on `syncAutoStorageKeys`, so it does not vote either.
 * - `keyVaultSecret`: a secret keyturn publishes the key to; votes.
 * - `sasDatastore`: a datastore with a SAS credential; a SAS dies with its signing key. Reported only.
 * - `identityDatastore`: a datastore with no credentials (identity access); unaffected. Reported only.
 *
 * What the rotation does with each kind is described once, in `CONSUMER_KINDS` (`kinds.ts`).
 */
export type ConsumerKind =
  "datastore" | "workspace" | "batchAutoStorage" | "keyVaultSecret" | "sasDatastore" | "identityDatastore";

interface ConsumerBase {
  kind: ConsumerKind;
  /** ARM id for datastores, workspaces and Batch accounts; the secret's id (vault URL + name, no version) for Key Vault. */
  id: string;
  name: string;
  /** The storage account's ARM id; a bare account name is accepted when discovery only knows that. */
  storageAccountId: string;
  workspaceId?: string;
  /** Fingerprint of the key the consumer holds now; undefined when not applicable or not yet set. */
  heldFingerprint?: Fingerprint;
}

export interface DatastoreConsumer extends ConsumerBase {
  kind: "datastore";
  workspaceId: string;
  /** e.g. AzureBlob, AzureFile: the adapter re-registers the same type in place. */
  datastoreType?: string;
  /** The workspace's default blob/file datastores; worth knowing when one stalls. */
  isDefault?: boolean;
  /** Container, file share or filesystem: where the data-plane probe looks. */
  container?: string;
}

export interface WorkspaceConsumer extends ConsumerBase {
  kind: "workspace";
}

export interface BatchAutoStorageConsumer extends ConsumerBase {
  kind: "batchAutoStorage";
  /** `autoStorage.lastKeySync` at discovery: verification looks for it to move. */
  lastKeySync?: string;
}

export interface KeyVaultSecretConsumer extends ConsumerBase {
  kind: "keyVaultSecret";
  vaultUrl: string;
  secretName: string;
}

export interface SasDatastoreConsumer extends ConsumerBase {
  kind: "sasDatastore";
  workspaceId: string;
  /** Which key signed the SAS, when the discovering activity could tell. */
  signedWith?: KeyName;
}

export interface IdentityDatastoreConsumer extends ConsumerBase {
  kind: "identityDatastore";
  workspaceId: string;
}

export type Consumer =
  | DatastoreConsumer
  | WorkspaceConsumer
  | BatchAutoStorageConsumer
  | KeyVaultSecretConsumer
  | SasDatastoreConsumer
  | IdentityDatastoreConsumer;

/** The part of a consumer that reports and plans carry around. */
export interface ConsumerRef {
  kind: ConsumerKind;
  id: string;
  name: string;
}

export function consumerRef(consumer: Consumer): ConsumerRef {
  return { kind: consumer.kind, id: consumer.id, name: consumer.name };
}
