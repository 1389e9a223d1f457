import type { ConsumerKind, KeyName } from "./model";

/**
 * Everything the rotation core knows about a consumer kind, in one table: a new kind is one entry in
 * `CONSUMER_KINDS` (plus its member of `ConsumerKind` and its `Consumer` interface in `model.ts`), and
 * the compiler refuses a kind left out. The core (plan, machine, guards, policy, report) reads only this
 * table; it never names a kind.
 */

/** How a consumer is moved to a key; one per consumer kind that holds a key. */
export type MoveOperation =
  | "putDatastore" // re-register in place; never delete and re-create (soft-deleted Key Vault secrets)
  | "setSecretVersion" // a new version of the Key Vault secret, tagged with key name and rotation id
  | "resignSas" // the same SAS (resource, permissions, expiry) signed with the target key, written in place
  | "syncAutoStorageKeys" // Batch picks the key itself
  | "resyncKeys"; // workspace long-running operation; without it the workspace follows after ~1 hour

/**
 * Whether an operation writes the key keyturn chose (so where its consumers stand is keyturn's doing,
 * and they may vote) or asks the service to pick one of the account's keys.
 */
export const MOVE_OPERATIONS: Record<MoveOperation, { writesKey: boolean }> = {
  putDatastore: { writesKey: true },
  setSecretVersion: { writesKey: true },
  resignSas: { writesKey: true },
  syncAutoStorageKeys: { writesKey: false },
  resyncKeys: { writesKey: false },
};

/**
 * - `holdsKey`: the stored secret's fingerprint is the target key's (for a SAS: the target key signed it)
 *   and a data-plane probe with it succeeds.
 * - `holdsLiveKey`: the workspace's `listKeys` shows one of the account's current keys (the service chose which).
 * - `keySynced`: Batch `autoStorage.lastKeySync` moved past its value before the sync.
 */
export type CheckKind = "holdsKey" | "holdsLiveKey" | "keySynced";

/** A kind whose key keyturn moves: how, and how it proves the move worked. */
export interface MovedKind {
  handling: "move";
  operation: MoveOperation;
  check: CheckKind;
  /** `holdsKey` only: a stored key never tried on the data plane does not verify. */
  probeRequired: boolean;
  /**
   * Set when the service never says which key the consumer holds: after every regeneration it gets a
   * _possible_ window (an upper bound, labelled as such) with this reason.
   */
  possibleWindow?: (key: KeyName) => string;
}

/** A kind keyturn finds and reports but cannot move. */
export interface ReportOnlyKind {
  handling: "reportOnly";
  /** The note a plan carries for each such consumer (a consumer may say more, e.g. which key signed a SAS). */
  reason: string;
}

export type ConsumerKindSpec = {
  /** How reports, plans and warnings name the kind. */
  reportName: string;
  /** Where discovery finds it (the adapter in `shared/azure/`, the emulator model in `emulator/`). */
  discovery: string;
  /** Its stored key is keyturn's doing: where it stands decides the active key (`decideActiveKey`). */
  votes: boolean;
  /** The service picks its key on a resync/sync: it follows every regeneration and moves last. */
  serviceChosen: boolean;
  /**
   * How long consumers of the kind are known to keep a key they read: a grace shorter than this retires
   * a key some of them still use. Undefined where nothing is known (a datastore's job keeps its key as
   * long as it runs).
   */
  knownKeyCache: { seconds: number; why: string } | undefined;
  /** Position in plans and reports (`sortConsumers`): lower first. */
  order: number;
  /**
   * Which key it holds can only be told with the account's keys in hand (a SAS: which key signed it), so
   * the account's snapshot observes it (`observeAtSnapshot` in shared/activities), not discovery.
   */
  heldKnownAtSnapshot: boolean;
} & (MovedKind | ReportOnlyKind);

export const CONSUMER_KINDS: Record<ConsumerKind, ConsumerKindSpec> = {
  workspace: {
    reportName: "workspace",
    discovery:
      "workspaces listed per subscription, their storage key from listKeys (shared/azure/workspaces.ts)",
    votes: false,
    serviceChosen: true,
    handling: "move",
    operation: "resyncKeys",
    check: "holdsLiveKey",
    probeRequired: false,
    knownKeyCache: {
      seconds: 3_600,
      why: "a workspace takes a new key by itself only after about an hour, and its jobs keep the key they started with",
    },
    order: 0,
    heldKnownAtSnapshot: false,
  },
  batchAutoStorage: {
    reportName: "batchAutoStorage",
    discovery: "Batch accounts whose auto-storage is in StorageKeys mode (shared/azure/batch.ts)",
    votes: false,
    serviceChosen: true,
    handling: "move",
    operation: "syncAutoStorageKeys",
    check: "keySynced",
    probeRequired: false,
    possibleWindow: (key) =>
      `Batch does not report which key its auto-storage holds: if its last sync picked ${key}, it held the regenerated ${key} until it was synced again`,
    knownKeyCache: undefined,
    order: 1,
    heldKnownAtSnapshot: false,
  },
  datastore: {
    reportName: "datastore",
    discovery:
      "AccountKey datastores of every workspace, their secret read once (shared/azure/datastores.ts)",
    votes: true,
    serviceChosen: false,
    handling: "move",
    operation: "putDatastore",
    check: "holdsKey",
    probeRequired: true,
    knownKeyCache: undefined,
    order: 2,
    heldKnownAtSnapshot: false,
  },
  keyVaultSecret: {
    reportName: "keyVaultSecret",
    discovery: "secrets tagged keyturn-storage-account in the vaults configured (shared/azure/secrets.ts)",
    votes: true,
    serviceChosen: false,
    handling: "move",
    operation: "setSecretVersion",
    check: "holdsKey",
    probeRequired: false,
    knownKeyCache: {
      seconds: 86_400,
      why: "App Service and Functions Key Vault references refresh every 24 hours",
    },
    order: 3,
    heldKnownAtSnapshot: false,
  },
  sasDatastore: {
    reportName: "sasDatastore",
    discovery:
      "Sas datastores of every workspace whose SAS an account key signed; which key, at the account's snapshot (shared/azure/datastores.ts, shared/azure/sas.ts)",
    votes: true,
    serviceChosen: false,
    handling: "move",
    operation: "resignSas",
    check: "holdsKey",
    probeRequired: true,
    knownKeyCache: undefined,
    order: 4,
    heldKnownAtSnapshot: true,
  },
  untouchedSasDatastore: {
    reportName: "untouchedSasDatastore",
    discovery:
      "Sas datastores whose SAS keyturn does not re-sign: user delegation, expired, or not reproducible (shared/azure/sas.ts)",
    votes: false,
    serviceChosen: false,
    handling: "reportOnly",
    reason: "a SAS keyturn leaves as it is",
    knownKeyCache: undefined,
    order: 5,
    heldKnownAtSnapshot: false,
  },
  registryWorkspace: {
    reportName: "registryWorkspace",
    discovery:
      "workspaces whose container registry has the admin user on, the password from listKeys().containerRegistryCredentials (shared/azure/registry.ts)",
    votes: false,
    serviceChosen: true,
    handling: "move",
    operation: "resyncKeys",
    check: "holdsLiveKey",
    probeRequired: false,
    possibleWindow: (key) =>
      `which registry password a workspace resync picks is undocumented: if it picked ${key === "key1" ? "password" : "password2"}, the workspace held the regenerated one until its resync`,
    knownKeyCache: undefined,
    order: 7,
    heldKnownAtSnapshot: false,
  },
  identityDatastore: {
    reportName: "identityDatastore",
    discovery: "datastores with no credentials, identity-based access (shared/azure/datastores.ts)",
    votes: false,
    serviceChosen: false,
    handling: "reportOnly",
    reason: "identity-based access: not affected by key rotation",
    knownKeyCache: undefined,
    order: 6,
    heldKnownAtSnapshot: false,
  },
};

/** Every kind, in the order plans and reports list them. */
export const CONSUMER_KIND_ORDER: readonly ConsumerKind[] = (
  Object.keys(CONSUMER_KINDS) as ConsumerKind[]
).sort((a, b) => CONSUMER_KINDS[a].order - CONSUMER_KINDS[b].order);

/** Consumers whose stored key keyturn writes itself: where they stand decides the active key. */
export function isVoting(kind: ConsumerKind): boolean {
  return CONSUMER_KINDS[kind].votes;
}

/** Consumers whose key the service picks on a resync/sync: they follow every regeneration. */
export function isServiceChosen(kind: ConsumerKind): boolean {
  return CONSUMER_KINDS[kind].serviceChosen;
}

/** Consumers that hold no account key keyturn can move: reported, never written. */
export function isReportOnly(kind: ConsumerKind): boolean {
  return CONSUMER_KINDS[kind].handling === "reportOnly";
}

/** The move and check of a kind keyturn moves; throws for a report-only kind. */
export function movedKind(kind: ConsumerKind): MovedKind {
  const spec = CONSUMER_KINDS[kind];
  if (spec.handling !== "move") throw new Error(`consumer kind ${kind} holds no key keyturn can move`);
  return spec;
}
