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
  /** `sasPolicy.sasExpirationPeriod` ("d.hh:mm:ss"): the longest a SAS of the account should be valid. */
  sasExpirationPeriod?: string;
  /**
   * When keyturn last regenerated both keys, from the account's lock: the keys' age where Azure records
   * no creation time (classic accounts).
   */
  lastRotatedAt?: string;
  /**
   * Set when the two keys are not a storage account's: `batch`, a Batch account's shared keys (seed 004),
   * proved on its data plane at `batchEndpoint` rather than on a blob service.
   */
  keyHolder?: "batch" | "registry";
  batchEndpoint?: string;
  /** A registry's `loginServer`: its admin passwords are proved with `GET /v2/` there. */
  registryLoginServer?: string;
}

/**
 * - `datastore`: an ML datastore with AccountKey credentials; keyturn writes its key, so it votes.
 * - `workspace`: the workspace's own storage key; the service chooses it on `resyncKeys`, so it does
 *   not vote and follows after every regeneration.
 * - `batchAutoStorage`: a Batch account's auto-storage in StorageKeys mode; the service chooses the key
 *   on `syncAutoStorageKeys`, so it does not vote either.
 * - `keyVaultSecret`: a secret keyturn publishes the key to; votes.
 * - `sasDatastore`: a datastore whose SAS was signed with an account key (account or container SAS); a SAS
 *   dies with its signing key, so keyturn re-signs it with the key that survives. Votes.
 * - `untouchedSasDatastore`: a datastore whose SAS keyturn does not re-sign (a user delegation SAS, an
 *   expired one, one it cannot reproduce); `why` says which. Reported only.
 * - `identityDatastore`: a datastore with no credentials (identity access); unaffected. Reported only.
 * - `registryWorkspace`: a workspace holding its container registry's admin password (seed 003,
 *   `--registry-passwords`); the service chooses which on `resyncKeys`, like its storage key.
 *
 * What the rotation does with each kind is described once, in `CONSUMER_KINDS` (`kinds.ts`).
 */
export type ConsumerKind =
  | "datastore"
  | "workspace"
  | "batchAutoStorage"
  | "keyVaultSecret"
  | "sasDatastore"
  | "untouchedSasDatastore"
  | "identityDatastore"
  | "registryWorkspace";

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

/** `heldFingerprint` is the fingerprint of the key that signed the SAS; only the snapshot can tell it. */
export interface SasDatastoreConsumer extends ConsumerBase {
  kind: "sasDatastore";
  workspaceId: string;
  /** The container a container SAS applies to, and where the data-plane probe lists. */
  container?: string;
  /** The SAS's start (`st`) and expiry (`se`): re-signing keeps them. */
  startsOn?: string;
  expiresOn?: string;
}

export interface UntouchedSasDatastoreConsumer extends ConsumerBase {
  kind: "untouchedSasDatastore";
  workspaceId: string;
  /** Why keyturn leaves this SAS as it is. */
  why: string;
}

export interface IdentityDatastoreConsumer extends ConsumerBase {
  kind: "identityDatastore";
  workspaceId: string;
}

/** Its key holder (`storageAccountId`) is the registry; `id` is the workspace's, with a suffix. */
export interface RegistryWorkspaceConsumer extends ConsumerBase {
  kind: "registryWorkspace";
  workspaceId: string;
}

export type Consumer =
  | DatastoreConsumer
  | WorkspaceConsumer
  | BatchAutoStorageConsumer
  | KeyVaultSecretConsumer
  | SasDatastoreConsumer
  | UntouchedSasDatastoreConsumer
  | IdentityDatastoreConsumer
  | RegistryWorkspaceConsumer;

/** The part of a consumer that reports and plans carry around. */
export interface ConsumerRef {
  kind: ConsumerKind;
  id: string;
  name: string;
}

export function consumerRef(consumer: Consumer): ConsumerRef {
  return { kind: consumer.kind, id: consumer.id, name: consumer.name };
}
